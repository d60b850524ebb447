#include "sim/scenario.hpp"

#include <cmath>

namespace ps::sim {

namespace {

template <typename E, std::size_t N>
std::optional<E> lookup(std::string_view s, const std::array<std::pair<E, std::string_view>, N>& table) {
    for (auto& [e, name] : table)
        if (name == s) return e;
    return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view name_of(E e, const std::array<std::pair<E, std::string_view>, N>& table) {
    for (auto& [v, name] : table)
        if (v == e) return name;
    return "?";
}

constexpr std::array<std::pair<Model, std::string_view>, 6> kModels{{
    {Model::ClientServer, "client-server"},
    {Model::Caching, "caching"},
    {Model::P2pRandom, "p2p-random"},
    {Model::P2pLocality, "p2p-locality"},
    {Model::P2pStay, "p2p-stay"},
    {Model::P2pFull, "p2p-full"},
}};
constexpr std::array<std::pair<Level, std::string_view>, 2> kLevels{{{Level::Download, "download"},
                                                                     {Level::Segment, "segment"}}};
constexpr std::array<std::pair<Arrival, std::string_view>, 3> kArrivals{
    {{Arrival::Poll, "poll"}, {Arrival::PollExp, "poll-exp"}, {Arrival::Flash, "flash"}}};
constexpr std::array<std::pair<OnlineDist, std::string_view>, 2> kOnline{{{OnlineDist::Fixed, "fixed"},
                                                                         {OnlineDist::Exp, "exp"}}};
constexpr std::array<std::pair<DomainDist, std::string_view>, 2> kDomainDists{
    {{DomainDist::Pareto, "pareto"}, {DomainDist::Equal, "equal"}}};

bool finite_nonneg(double v) { return std::isfinite(v) && v >= 0; }

}  // namespace

std::string_view to_string(Model m) { return name_of(m, kModels); }
std::optional<Model> model_from_string(std::string_view s) { return lookup(s, kModels); }
bool devices_serve(Model m) { return m != Model::ClientServer && m != Model::Caching; }

std::string_view to_string(Level l) { return name_of(l, kLevels); }
std::optional<Level> level_from_string(std::string_view s) { return lookup(s, kLevels); }
std::string_view to_string(Arrival a) { return name_of(a, kArrivals); }
std::optional<Arrival> arrival_from_string(std::string_view s) { return lookup(s, kArrivals); }
std::string_view to_string(OnlineDist d) { return name_of(d, kOnline); }
std::optional<OnlineDist> online_dist_from_string(std::string_view s) { return lookup(s, kOnline); }
std::string_view to_string(DomainDist d) { return name_of(d, kDomainDists); }
std::optional<DomainDist> domain_dist_from_string(std::string_view s) { return lookup(s, kDomainDists); }

std::uint64_t patch_bytes(const Scenario& s) {
    return static_cast<std::uint64_t>(std::llround(s.patch_mib * static_cast<double>(kSegmentBytes)));
}

std::uint32_t segment_count(const Scenario& s) {
    return static_cast<std::uint32_t>((patch_bytes(s) + kSegmentBytes - 1) / kSegmentBytes);
}

double arrival_mean_seconds(const Scenario& s) {
    return s.arrival == Arrival::Flash ? s.flash_minutes * 60 : s.poll_hours * 3600;
}

Status validate(const Scenario& s) {
    std::uint64_t devices = s.devices;
    std::uint64_t domains = s.domains;
    if (!s.domain_sizes.empty()) {
        devices = 0;
        for (auto n : s.domain_sizes) devices += n;
        domains = s.domain_sizes.size();
    }
    if (devices == 0) return err("no devices");
    if (devices > kMaxDevices) return err("more than " + std::to_string(kMaxDevices) + " devices");
    if (s.level == Level::Segment && devices > kMaxSegmentLevelDevices)
        return err("segment level holds at most " + std::to_string(kMaxSegmentLevelDevices) +
                   " devices (use --level download)");
    if (domains == 0) return err("no domains");
    if (domains > kMaxDomains) return err("more than " + std::to_string(kMaxDomains) + " domains");
    if (s.domain_sizes.empty() && domains > devices) return err("more domains than devices");
    if (!(s.domain_alpha > 0) || !std::isfinite(s.domain_alpha)) return err("the domain-size tail index must be > 0");
    if (!(s.poll_hours > 0) || !std::isfinite(s.poll_hours)) return err("the polling interval must be > 0");
    if (!(s.flash_minutes > 0) || !std::isfinite(s.flash_minutes)) return err("the flash-crowd mean must be > 0");
    if (!finite_nonneg(s.online_minutes)) return err("the online time must be >= 0");
    if (!(s.patch_mib > 0) || s.patch_mib > kMaxPatchMib || patch_bytes(s) == 0)
        return err("the patch must be more than 0 and at most 65536 MiB");
    for (auto* c : {&s.device, &s.super, &s.origin})
        if (!finite_nonneg(c->down_mbps) || !finite_nonneg(c->up_mbps)) return err("capacities must be >= 0");
    if (s.device.down_mbps == 0 || s.super.down_mbps == 0)
        return err("devices and super-nodes need a finite download capacity (> 0)");
    if (!finite_nonneg(s.stay_factor)) return err("the stay factor must be >= 0");
    if (!finite_nonneg(s.seed_max_hours)) return err("the seeding limit must be >= 0");
    if (s.max_peers == 0) return err("max-peers must be at least 1");
    if (!(s.lookup_seconds > 0)) return err("lookup interval must be > 0 s");
    if (!(s.delay_local_ms >= 0) || !(s.delay_remote_ms >= 0) || s.delay_local_ms > 10'000 || s.delay_remote_ms > 10'000)
        return err("link delays must be within 0..10000 ms");
    if (s.conn_buffer_kib == 0) return err("the connection buffer must be > 0");
    if (!(s.bin_minutes > 0) || !std::isfinite(s.bin_minutes)) return err("the bin width must be > 0");
    return {};
}

}  // namespace ps::sim
