// The daemon's Prometheus text (GET /metrics, docs/daemon.md#metrics): its
// counters, the node's, the process's (memory, CPU, file descriptors), build
// information, the cache, and segment fetch times per source class.
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "node/daemon.hpp"
#include "node/daemon_util.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

using namespace daemon_util;

namespace {

std::string& version_slot() {
    static std::string v = "unknown";
    return v;
}

// Prometheus label values: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// The text format, one metric family after the other.
struct PromText {
    std::string o;
    void metric(const char* name, const char* type, const char* help) {
        o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void sample(const std::string& name, std::uint64_t v, const std::string& labels = "") {
        o += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
    }
    void sample(const std::string& name, double v, const std::string& labels) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.6g", v);
        o += name + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
    }
    // A metric's header and its first sample (more samples may follow).
    void single(const char* name, const char* type, const char* help, std::uint64_t v, const std::string& labels = "") {
        metric(name, type, help);
        sample(name, v, labels);
    }
};

// Datagrams and bytes through the node's DHT socket, by direction and kind.
void dht_traffic_metrics(PromText& t, const dht::Stats& st) {
    t.single("patchswarm_dht_datagrams_total", "counter", "UDP datagrams through the DHT socket, by direction.",
             st.in.packets, "direction=\"in\"");
    t.sample("patchswarm_dht_datagrams_total", st.out.packets, "direction=\"out\"");
    t.single("patchswarm_dht_datagram_bytes_total", "counter", "Bytes of UDP datagrams through the DHT socket, by direction.",
             st.in.bytes, "direction=\"in\"");
    t.sample("patchswarm_dht_datagram_bytes_total", st.out.bytes, "direction=\"out\"");
    t.metric("patchswarm_dht_datagrams_by_kind_total", "counter", "UDP datagrams through the DHT socket, by message kind.");
    for (std::size_t k = 0; k < dht::kDatagramKinds; ++k) {
        t.sample("patchswarm_dht_datagrams_by_kind_total", st.in.by_kind[k],
                 std::string("direction=\"in\",kind=\"") + dht::kind_name(k) + "\"");
        t.sample("patchswarm_dht_datagrams_by_kind_total", st.out.by_kind[k],
                 std::string("direction=\"out\",kind=\"") + dht::kind_name(k) + "\"");
    }
}

// Resident memory, CPU time, open and allowed fds, start time: the names
// Prometheus client libraries use for any process.
void process_metrics(PromText& t) {
    long pages = 0, resident = 0;
    if (std::ifstream statm("/proc/self/statm"); statm >> pages >> resident) {
        t.metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        t.sample("process_resident_memory_bytes", std::uint64_t(resident) * std::uint64_t(::sysconf(_SC_PAGESIZE)));
        t.metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        t.sample("process_virtual_memory_bytes", std::uint64_t(pages) * std::uint64_t(::sysconf(_SC_PAGESIZE)));
    }
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    t.metric("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    t.sample("process_cpu_seconds_total", cpu, "");
    std::error_code ec;
    std::uint64_t fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec))
        ++fds;
    if (fds) t.single("process_open_fds", "gauge", "Open file descriptors.", fds - 1);  // less the iterator's own
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        t.single("process_max_fds", "gauge", "Most file descriptors the process may open.", rl.rlim_cur);
}

// Cumulative buckets, sum and count per source class.
void fetch_time_metrics(PromText& t, const std::array<core::Histogram, core::kSourceClasses>& h) {
    const char* name = "patchswarm_segment_fetch_seconds";
    t.metric(name, "histogram", "Time from a segment request to the segment verified and written, by source class.");
    for (int c = 0; c < core::kSourceClasses; ++c) {
        const std::string src = std::string("source=\"") + source_key(c) + "\"";
        for (std::size_t i = 0; i < core::Histogram::kBounds.size(); ++i) {
            char le[32];
            std::snprintf(le, sizeof le, "%g", core::Histogram::kBounds[i]);
            t.sample(std::string(name) + "_bucket", h[c].cumulative(i), src + ",le=\"" + le + "\"");
        }
        t.sample(std::string(name) + "_bucket", h[c].count, src + ",le=\"+Inf\"");
        t.sample(std::string(name) + "_sum", h[c].sum, src);
        t.sample(std::string(name) + "_count", h[c].count, src);
    }
}

}  // namespace

void set_build_version(std::string v) { version_slot() = std::move(v); }
const std::string& build_version() { return version_slot(); }

void Daemon::fold_totals() {
    for (auto& w : node_->status().swarms) {
        Counters c;
        c.bytes_from = w.stats.bytes_from;
        c.bytes_uploaded = w.stats.bytes_uploaded;
        c.bytes_downloaded = w.stats.bytes_downloaded;
        c.segments_verified = w.stats.segments_verified;
        c.segments_rejected = w.stats.segments_rejected;
        last_[w.id] = c;
    }
}

std::string Daemon::metrics_text() {
    fold_totals();
    Counters c = retired_;
    for (auto& [id, k] : last_) c += k;
    NodeStatus ns = node_->status();
    PromText t;
    t.single("patchswarm_build_info", "gauge", "Always 1; the labels say what runs: version, role, domain.", 1,
             "version=\"" + label(build_version()) + "\",role=\"" + std::string(to_string(ns.role)) + "\",domain=\"" + label(ns.domain) + "\"");
    t.metric("patchswarm_bytes_received_total", "counter", "Segment bytes received, by source class.");
    for (int k = 0; k < core::kSourceClasses; ++k)
        t.sample("patchswarm_bytes_received_total", c.bytes_from[k], std::string("source=\"") + source_key(k) + "\"");
    t.single("patchswarm_bytes_verified_total", "counter", "Segment bytes that verified and were stored.", c.bytes_downloaded);
    t.single("patchswarm_bytes_uploaded_total", "counter", "Segment bytes sent to peers.", c.bytes_uploaded);
    t.single("patchswarm_segments_verified_total", "counter", "Segments that matched the signed manifest.", c.segments_verified);
    t.single("patchswarm_segments_rejected_total", "counter", "Segments that failed their hash (the sender is banned).", c.segments_rejected);
    fetch_time_metrics(t, ns.fetch_seconds);
    node_metrics(t.o, ns);
    t.single("patchswarm_downloads_completed_total", "counter", "Downloads completed and exported since start.", downloads_completed_);
    t.single("patchswarm_auto_fetches_total", "counter", "Downloads started on an announcement (device auto-fetch, super-node prefetch).", auto_fetches_);
    t.single("patchswarm_cache_evictions_total", "counter", "Cached patches evicted to stay under the quota.", evictions_);
    t.single("patchswarm_wave_waits_total", "counter", "Automatic fetches held back until the rollout wave reached this device.", wave_waits_);
    t.metric("patchswarm_policy_upload_refusals_total", "counter", "Times a device policy turned uploads off, by reason.");
    for (int r = 1; r < core::kUploadRefusals; ++r)
        t.sample("patchswarm_policy_upload_refusals_total", refusals_[r],
                 std::string("reason=\"") + core::to_string(core::UploadRefusal(r)) + "\"");
    t.single("patchswarm_policy_requests_refused_total", "counter", "Segment requests answered busy because a device policy refuses uploads.",
             node_->uploads_refused_by_policy());
    t.single("patchswarm_policy_downloads_refused_total", "counter", "New downloads refused below policy.min_free_disk.", caching_refused_);
    t.single("patchswarm_policy_uploads_refused", "gauge", "1 while a device policy refuses uploads.", verdict_.may_upload() ? 0 : 1);
    t.single("patchswarm_month_uploaded_bytes", "gauge", "Bytes uploaded this calendar month (what policy.monthly_upload_cap counts).",
             device_state().month_uploaded);
    t.single("patchswarm_cache_bytes", "gauge", "Bytes the node's patches take or will take on disk (what the quota counts).", reserved_bytes());
    t.single("patchswarm_cache_quota_bytes", "gauge", "The disk quota (node.quota; 0 = none).", cfg_.quota);
    t.single("patchswarm_hooks_total", "counter", "On-complete hook runs since start, by outcome.", hooks_ok_, "result=\"ok\"");
    t.sample("patchswarm_hooks_total", hooks_failed_, "result=\"failed\"");
    process_metrics(t);
    return t.o;
}

// What the node itself counts: peers, the DHT, announcements, limits, patches.
void Daemon::node_metrics(std::string& out, const NodeStatus& ns) const {
    PromText t;
    std::uint64_t bans = 0;
    for (auto& w : ns.swarms) bans += w.stats.banned.size();
    t.single("patchswarm_banned_peers", "gauge", "Peers banned for a patch, summed over patches.", bans);
    t.single("patchswarm_segment_hashes_total", "counter", "Segments hashed by the store (storing, serving unverified reads, passes, scrub).", ns.segment_hashes);
    t.single("patchswarm_scrub_dropped_total", "counter", "Held segments the background scrub found damaged and dropped.", ns.scrub_dropped);
    t.single("patchswarm_peers", "gauge", "Authenticated peer connections.", ns.peers);
    t.single("patchswarm_upload_peers", "gauge", "Peers holding an upload slot.", ns.upload_peers);
    t.single("patchswarm_known_contacts", "gauge", "Contacts in the passive view.", ns.contacts);
    t.single("patchswarm_dht_nodes", "gauge", "Good DHT routing-table entries.", ns.dht_nodes);
    t.single("patchswarm_dht_connected", "gauge", "1 when a DHT node answers (bootstrap done), else 0.",
             ns.dht_join.state == DhtJoin::State::Connected ? 1 : 0);
    t.single("patchswarm_dht_bootstrap_attempts", "gauge", "Bootstrap attempts since the DHT state last changed.", ns.dht_join.attempts);
    t.single("patchswarm_dht_operations_total", "counter", "DHT operations started, by kind.", ns.dht.gets, "op=\"get\"");
    t.sample("patchswarm_dht_operations_total", ns.dht.puts, "op=\"put\"");
    t.sample("patchswarm_dht_operations_total", ns.dht.listens, "op=\"listen\"");
    dht_traffic_metrics(t, ns.dht);
    t.single("patchswarm_dht_values_received_total", "counter", "DHT values received.", ns.dht.values_received);
    t.single("patchswarm_dht_values_dropped_total", "counter", "DHT values dropped (over the per-get bound or malformed).", ns.dht.values_dropped);
    t.single("patchswarm_dht_refused_total", "counter", "DHT records refused, by side.", ns.dht.announces_refused, "side=\"announce\"");
    t.sample("patchswarm_dht_refused_total", ns.dht.stores_refused, "side=\"store\"");
    t.metric("patchswarm_enrollment_refused_total", "counter",
             "Peers (at the handshake) and DHT records (read, or offered to store) refused for their node certificate, by reason.");
    for (std::size_t k = 0; k < kCertRefusals; ++k) {
        const std::string why = to_string(static_cast<CertRefusal>(k));
        t.sample("patchswarm_enrollment_refused_total", ns.peers_refused.refused[k], "what=\"peer\",reason=\"" + why + "\"");
        t.sample("patchswarm_enrollment_refused_total", ns.records_refused.refused[k], "what=\"record\",reason=\"" + why + "\"");
    }
    t.sample("patchswarm_enrollment_refused_total", ns.dht.stores_unenrolled, "what=\"store\",reason=\"any\"");
    t.single("patchswarm_statements_total", "counter", "Signed operator statements received (gossip, DHT), by outcome.",
             ns.statements_received - ns.statements_rejected, "result=\"accepted\"");
    t.sample("patchswarm_statements_total", ns.statements_rejected, "result=\"rejected\"");
    t.single("patchswarm_stale", "gauge",
             "1 when freshness is on and no valid freshness statement from the origin was seen within the window.",
             std::uint64_t{ns.stale ? 1u : 0u});
    t.single("patchswarm_freshness_rejected_total", "counter", "Freshness statements refused (not from an enrolled origin).",
             ns.freshness_rejected);
    t.single("patchswarm_trusted_keys", "gauge", "Operator keys in the trust store, by state.", std::uint64_t{ns.trusted_keys},
             "state=\"trusted\"");
    t.sample("patchswarm_trusted_keys", std::uint64_t{ns.revoked_keys}, "state=\"revoked\"");
    t.single("patchswarm_announcements_total", "counter", "Manifest announcements received by gossip, by outcome.", ns.announces_received - ns.announces_rejected, "result=\"accepted\"");
    t.sample("patchswarm_announcements_total", ns.announces_rejected, "result=\"rejected\"");
    t.single("patchswarm_rate_limit_bytes_per_second", "gauge", "Configured rate limits (0 = none).", ns.upload_rate_limit, "direction=\"upload\"");
    t.sample("patchswarm_rate_limit_bytes_per_second", ns.download_rate_limit, "direction=\"download\"");
    auto patch = [](const SwarmStatus& w) { return "id=\"" + wire::short_hex(w.id) + "\",name=\"" + label(w.name) + "\""; };
    t.metric("patchswarm_patch_segments_held", "gauge", "Segments held, per patch.");
    for (auto& w : ns.swarms) t.sample("patchswarm_patch_segments_held", std::uint64_t{w.held}, patch(w));
    t.metric("patchswarm_patch_segments", "gauge", "Segments in the patch, per patch.");
    for (auto& w : ns.swarms) t.sample("patchswarm_patch_segments", std::uint64_t{w.segments}, patch(w));
    out += t.o;
}

}  // namespace ps::node
