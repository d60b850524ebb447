#include "node/dashboard.hpp"

#include <nlohmann/json.hpp>

#include <cmath>

#include "node/dashboard_assets.hpp"
#include "node/log.hpp"
#include "node/node_util.hpp"

namespace ps::node {

using json = nlohmann::json;
using node_util::unix_now_ms;

Counters rejected_counters(const NodeStatus& ns) {
    std::map<std::string, std::uint64_t> m;
    std::uint64_t segments = 0;
    for (auto& w : ns.swarms) segments += w.stats.segments_rejected;
    m["segments"] = segments;                     // failed their hash (the sender is banned)
    m["announcements"] = ns.announces_rejected;   // manifests that did not verify
    m["dht_records"] = ns.dht.stores_refused;     // values refused as a storing node
    std::uint64_t certs = 0, unenrolled = 0;
    for (std::size_t k = 0; k < kCertRefusals; ++k) {
        certs += ns.peers_refused.refused[k];        // peers refused at the handshake (enrollment)
        unenrolled += ns.records_refused.refused[k];  // holder records read without a valid certificate
    }
    m["certificates"] = certs;
    m["unenrolled_records"] = unenrolled;
    m["statements"] = ns.statements_rejected + ns.freshness_rejected;  // operator statements that did not verify
    return Counters(m.begin(), m.end());
}

namespace {

json counters_json(const Counters& c) {
    json o = json::object();
    for (auto& [k, v] : c) o[k] = v;
    return o;
}

std::uint64_t served_total(const NodeStatus& ns) {
    std::uint64_t n = 0;
    for (auto& w : ns.swarms) n += w.stats.bytes_uploaded;
    return n;
}

DashboardDomain from_summary(const wire::DomainSummary& s, std::int64_t now_s) {
    return {s.domain, s.online, s.holders, s.complete, s.bans, s.bytes_imported, s.rejected, now_s - s.issued};
}

json sample_json(const DashboardSample& s) {
    json domains = json::object();
    for (auto& d : s.domains)
        domains[d.domain] = {{"online", d.online},       {"holders", d.holders}, {"complete", d.complete},
                             {"bans", d.bans},           {"bytes_imported", d.bytes_imported},
                             {"rejected", counters_json(d.rejected)}, {"age_s", d.age_s}};
    return {{"t", double(s.unix_ms) / 1000.0},
            {"served_bytes", s.served_bytes},
            {"served_rate", std::round(s.served_rate)},
            {"bans", s.bans},
            {"rejected", counters_json(s.rejected)},
            {"domains", domains}};
}

}  // namespace

Dashboard::Dashboard(transfer::Loop& loop, Node& node, Current current, Options opts)
    : loop_(loop), node_(node), current_(std::move(current)), opts_(opts), ring_(opts.samples) {}

Dashboard::~Dashboard() {
    *alive_ = false;
    web_.reset();  // answers what waits, joins the server's threads
}

Status Dashboard::start(const std::string& host, int port) {
    if (port >= 0) {
        auto srv = transfer::WebServer::start(loop_, host, static_cast<std::uint16_t>(port),
                                              [this](const std::string& path, auto respond) { handle(path, respond); });
        if (!srv) return std::move(srv).take_error();
        web_ = std::move(*srv);
    }
    timer_ = std::make_unique<transfer::Timer>(loop_);
    timer_->start(200, opts_.interval_ms ? opts_.interval_ms : 3'000, [this] { tick(); });
    return {};
}

void Dashboard::tick() {
    if (busy_) return;
    NodeStatus ns = node_.status();
    DashboardSample s;
    s.unix_ms = unix_now_ms();
    s.served_bytes = served_total(ns);
    if (last_ms_ && s.unix_ms > last_ms_)
        s.served_rate = double(s.served_bytes - std::min(s.served_bytes, last_served_)) * 1000.0 / double(s.unix_ms - last_ms_);
    last_served_ = s.served_bytes;
    last_ms_ = s.unix_ms;
    for (auto& w : ns.swarms) s.bans += static_cast<std::uint32_t>(w.stats.banned.size());
    s.rejected = rejected_counters(ns);
    auto vm = current_();
    if (!vm || (shown_ && shown_->id != vm->id)) ring_ = Ring<DashboardSample>(opts_.samples);  // a new patch: a new series
    shown_ = vm;
    if (!vm) return record(std::move(s));
    busy_ = true;
    std::weak_ptr<bool> alive = alive_;
    if (ns.role == Role::Super) return sample_super(*vm, std::move(s));
    node_.domain_summaries(vm->id, opts_.max_summary_age_s, [this, alive, s](std::vector<wire::DomainSummary> sums) mutable {
        if (auto a = alive.lock(); !a || !*a) return;
        const std::int64_t now_s = unix_now_ms() / 1000;
        for (auto& d : sums) s.domains.push_back(from_summary(d, now_s));
        record(std::move(s));
    });
}

// A super-node counts its own domain (as `rollout` does) and, when publishing,
// puts the summary into the DHT for the origin.
void Dashboard::sample_super(const VerifiedManifest& vm, DashboardSample s) {
    std::weak_ptr<bool> alive = alive_;
    node_.rollout(vm.id, {}, [this, alive, vm, s](Rollout r) mutable {
        if (auto a = alive.lock(); !a || !*a) return;
        NodeStatus ns = node_.status();
        wire::DomainSummary sum;
        sum.domain = ns.domain;
        sum.manifest_id = vm.id;
        sum.issued = unix_now_ms() / 1000;
        for (auto& d : r.domains)
            if (d.domain == ns.domain) {
                sum.online = d.online;
                sum.holders = d.holders;
                sum.complete = std::min(d.complete, d.holders);
            }
        for (auto& w : ns.swarms)
            if (w.id == vm.id) {
                sum.bytes_imported = w.stats.bytes_from[int(core::SourceClass::OtherDomain)] +
                                     w.stats.bytes_from[int(core::SourceClass::Origin)];
                sum.bans = static_cast<std::uint32_t>(w.stats.banned.size());
            }
        sum.rejected = s.rejected;
        if (opts_.publish) {
            auto same = [&](const wire::DomainSummary& a) {
                auto x = a, y = sum;
                x.issued = y.issued = 0;
                x.seq = y.seq = 0;
                return x == y;
            };
            if (!last_put_ || !same(*last_put_) || s.unix_ms - last_put_ms_ >= 60'000) {
                node_.put_summary(sum);
                last_put_ = sum;
                last_put_ms_ = s.unix_ms;
            }
        }
        s.domains.push_back(from_summary(sum, sum.issued));
        record(std::move(s));
    }, true);
}

void Dashboard::record(DashboardSample s) {
    busy_ = false;
    ring_.push(std::move(s));
}

std::string Dashboard::state_json() const {
    NodeStatus ns = node_.status();
    json samples = json::array();
    for (std::size_t i = 0; i < ring_.size(); ++i) samples.push_back(sample_json(ring_.at(i)));
    json patch = nullptr;
    if (shown_)
        patch = {{"id", to_hex(shown_->id)}, {"name", shown_->manifest.name}, {"version", shown_->manifest.version}};
    json j{{"role", std::string(to_string(ns.role))},
           {"domain", ns.domain},
           {"interval_s", double(opts_.interval_ms) / 1000.0},
           {"patch", patch},
           {"samples", samples}};
    return j.dump();
}

void Dashboard::handle(const std::string& path, std::function<void(transfer::WebReply)> respond) const {
    if (path == "/api/state") {
        try {
            return respond({200, "application/json", state_json()});
        } catch (const std::exception& e) {  // nlohmann; never across the loop
            return respond({500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"});
        }
    }
    std::size_t n = 0;
    const DashboardAsset* assets = dashboard_assets(n);
    for (std::size_t i = 0; i < n; ++i)
        if (assets[i].path == path || (path == "/index.html" && assets[i].path == "/"))
            return respond({200, std::string(assets[i].content_type), std::string(assets[i].body)});
    respond({404, "text/plain; charset=utf-8", "not found; the dashboard is at /\n"});
}

}  // namespace ps::node
