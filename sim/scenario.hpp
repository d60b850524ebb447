// What one simulation run models: delivery model, population, arrivals, online
// times, capacities, and the level of detail. Plain data; every field has a
// default and validate() says what is wrong with a combination.
//
// The simulator is the second driver of the sans-IO core (core/): it owns no
// clock, no thread and no global randomness. Time is simulated microseconds;
// every random draw comes from a ps::Rng stream derived from `seed`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/download.hpp"
#include "core/engine.hpp"
#include "core/result.hpp"

namespace ps::sim {

// Delivery models (the paper's Figure 13 and Section 5.3, plus the caches of
// the operator's use case).
enum class Model : std::uint8_t {
    ClientServer,  // every device downloads from the origin
    Caching,       // a super-node (cache) per covered domain; devices never serve
    P2pRandom,     // devices serve; holders are matched uniformly at random across domains
    P2pLocality,   // devices serve; the source ladder: own domain, own super, other domains, origin
    P2pStay,       // as P2pLocality; a device stays on after completing for stay_factor x its download time
    P2pFull,       // as P2pLocality; a device stays until it has uploaded as much as it downloaded
};
inline constexpr std::array<Model, 6> kAllModels{Model::ClientServer, Model::Caching,  Model::P2pRandom,
                                                 Model::P2pLocality,  Model::P2pStay, Model::P2pFull};
std::string_view to_string(Model m);
std::optional<Model> model_from_string(std::string_view s);
bool devices_serve(Model m);  // the P2P models

// Download level: one flow per download, whole patch from one holder (compact,
// for 10M devices). Segment level: every device runs a core::Download and every
// holder a core::Uploads; segments move as flows over modelled connections.
enum class Level : std::uint8_t { Download, Segment };
std::string_view to_string(Level l);
std::optional<Level> level_from_string(std::string_view s);

// When a device first asks for the patch, counted from the release.
//  - Poll: always-on machines polling every poll_hours: the first poll after the
//    release is uniform on [0, poll_hours) (the residual of a fixed period).
//  - PollExp: polls as a Poisson process (mean interval poll_hours): the first
//    poll is exponential with mean poll_hours.
//  - Flash: a flash crowd after a release: exponential with mean flash_minutes.
enum class Arrival : std::uint8_t { Poll, PollExp, Flash };
std::string_view to_string(Arrival a);
std::optional<Arrival> arrival_from_string(std::string_view s);

// How long a device stays online after it asked (the paper's B).
enum class OnlineDist : std::uint8_t { Fixed, Exp };
std::string_view to_string(OnlineDist d);
std::optional<OnlineDist> online_dist_from_string(std::string_view s);

// How domain sizes are drawn when no file gives them.
//  - Pareto: weights from a Pareto law (tail index domain_alpha, heavier when
//    smaller), scaled to `devices` by largest remainder, at least 1 per domain.
//  - Equal: devices / domains each (the remainder spread over the first ones).
enum class DomainDist : std::uint8_t { Pareto, Equal };
std::string_view to_string(DomainDist d);
std::optional<DomainDist> domain_dist_from_string(std::string_view s);

// One kind of host. Link capacities in megabits per second (10^6 bit/s), 0 =
// unlimited. `slots`: peers served at once (core::UploadConfig::slots, the
// node's --upload-slots), 0 = unlimited. `buffer_kib` (segment level): bytes
// handed to connections and not yet through, at most, across all of the host's
// connections (the node's upload_buffer), 0 = unlimited.
struct Capacity {
    double down_mbps;
    double up_mbps;
    std::uint32_t slots;
    std::uint32_t buffer_kib = 8192;
};

struct Scenario {
    Model model = Model::P2pLocality;
    Level level = Level::Download;

    // Population. domain_sizes, when not empty, wins over devices/domains.
    std::uint64_t devices = 100'000;
    std::uint32_t domains = 30;
    std::vector<std::uint32_t> domain_sizes;
    DomainDist domain_dist = DomainDist::Pareto;
    double domain_alpha = 1.2;

    // Requests and online times.
    Arrival arrival = Arrival::Poll;
    double poll_hours = 20;
    double flash_minutes = 30;
    double online_minutes = 1;
    OnlineDist online_dist = OnlineDist::Fixed;

    // The patch (1 MiB segments, the last one may be shorter).
    double patch_mib = 16;
    std::uint64_t seed = 1;

    // Hosts. Devices upload at a quarter of their download rate, as in the
    // paper; slots and buffers are the node's defaults (peer 4, super 64). The
    // origin is unlimited, as in the paper: the source load is the demand on it.
    Capacity device{20, 5, 4, 8192};
    Capacity super{1000, 1000, 64, 8192};
    Capacity origin{0, 0, 0, 0};

    // Seeding (the P2P models).
    double stay_factor = 1.0;     // P2pStay: extra online time after completing, x download time
    double seed_max_hours = 24;   // P2pFull: stop seeding after this long even below ratio 1

    // Super-nodes. Caching: a cache in each domain of at least cache_min_devices
    // devices (the paper put caches where more than 25 requests came from).
    // P2P models: with `supers`, one always-on super-node in every domain.
    std::uint32_t cache_min_devices = 1;
    bool supers = false;
    // When a super-node fetches the patch: at the release (the operator pushes
    // it to its caches, step 1 of the use case), or on its domain's first
    // request (a pull-through cache).
    bool super_at_release = true;
    // What the OtherDomain rung offers. remote_peers: devices see other
    // domains' devices (the paper's P2P, where peers prefer their own subnet but
    // may take any peer; patchswarm's DHT keys peers by domain, so `no` is what
    // the real node does). remote_supers: every host sees other domains'
    // super-nodes (the node's cross-domain key; `no` is the paper's caches,
    // which serve only the hosts behind them).
    bool remote_peers = true;
    bool remote_supers = true;

    // Segment level: discovery and the driver's timers.
    std::uint32_t max_peers = 32;    // holders known at once (node: --max-peers)
    double lookup_seconds = 5;       // how often a downloader looks for more holders
    // One-way delay of a link: between two hosts of a domain, and between
    // domains or to the origin (a message arrives after its serialization time
    // plus this).
    double delay_local_ms = 0;
    double delay_remote_ms = 0;
    std::uint32_t conn_buffer_kib = 4096;  // bytes queued on one connection before it counts as congested (node: kHighWater)
    core::DownloadConfig download{};       // every downloader's core::Download settings (node defaults)
    // The engine's settings the segment level varies (node defaults).
    core::Millis superseed_reserve = core::EngineConfig{}.superseed_reserve;
    core::Millis peer_pace = core::EngineConfig{}.peer_pace;
    // Segment level: record every upload chunk and stored segment
    // (RunResult::trace_*); for small runs, to see where a run loses time.
    bool trace = false;
    core::Millis origin_reserve = core::EngineConfig{}.origin_reserve;
    bool coordinate_imports = core::EngineConfig{}.coordinate_imports;
    core::Millis import_stall = core::EngineConfig{}.import_stall;

    // Outputs.
    double bin_minutes = 5;
};

// Derived numbers every level needs.
inline constexpr std::uint64_t kSegmentBytes = 1u << 20;
std::uint64_t patch_bytes(const Scenario& s);
std::uint32_t segment_count(const Scenario& s);
// Seconds: mean time to the first request (poll: H, exp: H, flash: F).
double arrival_mean_seconds(const Scenario& s);

// Hard limits (memory, and numbers a run can hold).
inline constexpr std::uint64_t kMaxDevices = 100'000'000;
inline constexpr std::uint64_t kMaxSegmentLevelDevices = 5'000'000;
inline constexpr std::uint32_t kMaxDomains = 10'000'000;
inline constexpr double kMaxPatchMib = 65'536;  // the manifest's segment limit

Status validate(const Scenario& s);

}  // namespace ps::sim
