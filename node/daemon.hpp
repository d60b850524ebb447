// The long-running node as devices, caches and the origin run it (`patchswarm
// node`): a Node plus what running unattended needs — settings from a config
// file, a control socket, downloads that survive restarts, a disk quota, the
// installer hook, metrics, reload on SIGHUP and a clean stop on SIGTERM.
// docs/daemon.md describes it from the user's side.
//
// Downloads added through the control socket are persisted in their download
// folder, DATA/<manifest-id>/, next to the store's `data` and `have`:
//   manifest  the signed manifest as received
//   job       "patchswarm-job-v1" then out=<path> and state=downloading|paused|complete
// DATA/accepted is the rollback state (node/trust.hpp RollbackGuard): the newest
// version of each patch name this node took on.
// At start every such folder is resumed (its manifest verified again).
//
// Everything runs on the loop thread; blocking file checks go to the thread pool.
// Sources: daemon.cpp (life cycle), daemon_control.cpp (control commands,
// metrics), daemon_fetch.cpp (auto-fetch, prefetch, cache room, publish).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/device_policy.hpp"
#include "core/result.hpp"
#include "core/rollout.hpp"
#include "node/config.hpp"
#include "node/dashboard.hpp"
#include "node/enroll.hpp"
#include "node/node.hpp"
#include "node/trust.hpp"
#include "transfer/http_server.hpp"
#include "transfer/local_server.hpp"
#include "transfer/loop.hpp"
#include "transfer/process.hpp"

namespace ps::node {

// Everything a running node needs, built from settings: options, identity
// (the node key in DATA/node.secret, created on first start) and trust.
struct Setup {
    NodeOptions opts;
    transfer::Identity identity;
    TrustStore trust;
};
Result<Setup> make_setup(const DaemonConfig& cfg);
// The node key in DATA/node.secret; created (with DATA/node.public) when missing.
Result<crypto::SecretKey> node_key(const std::string& data_dir);

// What a node checks before it starts (`patchswarm node`, the C API): the
// settings are valid and the operator's key or trust file is there (a fresh
// install has none yet: a wrong setting, not a failure).
Status check_settings(const DaemonConfig& cfg);

// The version `patchswarm --version` prints (cli::run sets it), for the
// patchswarm_build_info metric. "unknown" until set.
void set_build_version(std::string version);
const std::string& build_version();

// Runs the installer hook for a finished download: first checks the file
// against the manifest again (on the thread pool), then runs argv + [file]
// without a shell, with PATCHSWARM_MANIFEST_ID, PATCHSWARM_PATCH_NAME and
// PATCHSWARM_PATCH_VERSION in its environment. `done` gets a one-line outcome:
// "exit 0", "exit 3", "signal 9", or "not run: <reason>".
class HookRunner {
public:
    explicit HookRunner(transfer::Loop& loop) : loop_(loop) {}
    ~HookRunner();  // running hooks are left to finish; their outcome is not reported
    HookRunner(const HookRunner&) = delete;
    HookRunner& operator=(const HookRunner&) = delete;
    void run(const std::vector<std::string>& argv, const VerifiedManifest& vm, const std::string& file,
             std::function<void(bool ran_ok, const std::string& outcome)> done);
    std::size_t running() const { return procs_.size(); }

private:
    transfer::Loop& loop_;
    std::list<std::unique_ptr<transfer::Process>> procs_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

class Daemon {
public:
    // Re-reads the settings (config file + command line) for reload.
    using ConfigSource = std::function<Result<DaemonConfig>()>;

    // Opens the control socket, starts the node, serves [[serve]] entries,
    // resumes persisted downloads and starts the metrics endpoint.
    static Result<std::unique_ptr<Daemon>> start(transfer::Loop& loop, DaemonConfig cfg, ConfigSource reload);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Stops taking requests, withdraws DHT records, flushes stores; then `done`.
    void shutdown(std::function<void()> done);
    // Re-reads the settings and applies what can change while running: rate
    // limits, quota, log level, the hook. An invalid file changes nothing.
    Status reload();

    // One control request line -> one reply line (see node/control.hpp).
    // `respond` is called once, at once or, for requests that ask the network
    // (add by name, rollout), when the answer is there.
    void handle_control(std::string_view line, std::function<void(std::string)> respond);
    // Typed forms of `add` and `status` for embedding (embed/, the C API), on
    // the loop thread. A manifest file, or the newest manifest of a patch name
    // (asks the DHT: `done` comes later, on the loop thread); out "" is the
    // default path. The error's code is a control::ErrorCode.
    Result<Hash32> add_manifest(const std::string& manifest, const std::string& out);
    void add_by_name(const std::string& name, const std::string& out, std::function<void(Result<Hash32>)> done);
    struct Progress {
        Hash32 id{};
        std::string name;
        std::string state;  // as `status` names it: downloading, paused, complete, serving, failed
        std::string error;  // why it failed
        std::string out;    // the exported file ("" for a cached copy)
        std::uint64_t version = 0, held_bytes = 0, total = 0;
    };
    std::vector<Progress> progress() const;
    // The Prometheus text exposition of the node's counters.
    std::string metrics_text();

    // "ready role=... domain=... listen=...:P dht=P key=... control=... metrics=..."
    std::string ready_line() const;
    // One line for systemd's STATUS=: "dht connected; 3 peers; 1 downloading (42%), 2 complete".
    std::string summary() const;
    Node& node() { return *node_; }
    const DaemonConfig& config() const { return cfg_; }
    std::uint16_t metrics_port() const { return metrics_ ? metrics_->port() : 0; }
    std::uint16_t dashboard_port() const { return dashboard_ ? dashboard_->port() : 0; }

private:
    enum class JobState { Downloading, Paused, Complete, Failed };
    struct Job {
        std::string out;
        JobState state = JobState::Downloading;
        std::string error;
        std::string hook;  // outcome of the on-complete hook, "" before it ran
    };

    Daemon(transfer::Loop& loop, DaemonConfig cfg, ConfigSource reload, Setup setup);
    Status begin();
    void resume_downloads();
    void resume_published();
    // A verified manifest arrived by gossip or from the DHT: devices fetch
    // mandatory patches after a random delay, super-nodes prefetch at once.
    void on_announced(const VerifiedManifest& vm);
    // Starts a persisted download (after the quota check; a super-node evicts
    // least recently used cached patches to make room). Returns the reply line.
    // Adds and starts a download; the error's code (control::ErrorCode) says
    // whether it is already here or a rollback.
    Status add_job(const VerifiedManifest& vm, const std::string& out, const char* why);
    // add_job as a control reply.
    std::string add_download(const VerifiedManifest& vm, const std::string& out, const char* why);
    // What to evict so that `vm` fits limits.quota (nothing when it fits), or
    // why it cannot: a super-node drops cached copies, least recently used
    // first; a device only older versions of the same patch.
    Result<std::vector<Hash32>> plan_room(const VerifiedManifest& vm);
    // Starts `vm`'s automatic download after `delay` ms (once per patch at a time).
    void schedule_auto(const VerifiedManifest& vm, std::uint64_t delay);
    // Forgets a patch: node, job, download folder, counters folded into totals.
    Status drop_patch(const Hash32& id);
    std::string patches_dir() const;
    std::string default_out(const VerifiedManifest& vm) const;
    Status start_download(const VerifiedManifest& vm, const std::string& out, JobState state);
    void on_download_done(const VerifiedManifest& vm, Status st);
    Status save_job(const Hash32& id);
    std::string job_dir(const Hash32& id) const;
    Result<Hash32> select(const std::string& selector) const;
    std::uint64_t reserved_bytes() const;
    void fold_totals();
    void node_metrics(std::string& out, const NodeStatus& ns) const;
    // Rollout waves (daemon_waves.cpp): whether a device's automatic fetch of
    // `vm` waits for its wave (then it is kept, with a timer for its turn).
    core::WaveDecision wave_decision(const VerifiedManifest& vm) const;
    bool wave_hold(const VerifiedManifest& vm);
    void wave_turn(const Hash32& id);
    void apply_widenings();
    void drop_halted_waits();
    nlohmann::json wave_json(const VerifiedManifest& vm) const;
    void add_wave_fields(nlohmann::json& p, const Hash32& id) const;
    nlohmann::json waiting_json() const;
    // Device policies (daemon_policy.cpp).
    void start_policy();
    void policy_tick();
    void apply_policy();
    void save_month();
    std::string month_path() const;
    core::DeviceState device_state() const;
    // Why a new download may not start now (policy.min_free_disk), counted.
    std::optional<std::string> caching_refusal(const VerifiedManifest& vm);
    nlohmann::json policy_json() const;
    std::string cmd_policy(const std::string* battery, const std::string* on_ac, const std::string* metered);
    // [dashboard]: starts sampling (and serving, with dashboard.listen); daemon_dashboard.cpp.
    Status start_dashboard();

    std::string cmd_status(const std::string* patch);
    std::string cmd_list();
    std::string cmd_add(const std::string& manifest, const std::string& out);
    void cmd_add_by_name(const std::string& name, const std::string& out, std::function<void(std::string)> respond);
    // The newest verified manifest named `name` (gossip or the DHT), or why none.
    void find_named(const std::string& name, std::function<void(Result<VerifiedManifest>)> done);
    Result<Hash32> add_verified(const VerifiedManifest& vm, const std::string& out);
    std::string cmd_publish(const std::string& manifest, const std::string& file);
    void cmd_rollout(const std::string& name, const std::string* version, std::function<void(std::string)> respond);
    std::string cmd_pause_resume(const std::string& patch, bool pause);
    std::string cmd_remove(const std::string& patch);

    transfer::Loop& loop_;
    DaemonConfig cfg_;
    ConfigSource reload_;
    Setup setup_;
    std::unique_ptr<Node> node_;
    std::unique_ptr<transfer::LocalServer> control_;
    std::unique_ptr<transfer::HttpServer> metrics_;
    std::unique_ptr<Dashboard> dashboard_;  // before node_ goes: it samples the node
    HookRunner hooks_;
    std::map<Hash32, Job> jobs_;
    // The newest version accepted per patch name, kept in DATA/accepted: an
    // older manifest (a replayed announcement, say) is never downloaded again.
    std::optional<RollbackGuard> rollback_;
    std::map<Hash32, VerifiedManifest> manifests_;
    // Monotonic counters for metrics: totals of removed patches plus the last
    // values seen per patch.
    struct Counters {
        std::array<std::uint64_t, core::kSourceClasses> bytes_from{};
        std::uint64_t bytes_uploaded = 0, bytes_downloaded = 0, segments_verified = 0, segments_rejected = 0;
        Counters& operator+=(const Counters& o) {
            for (int c = 0; c < core::kSourceClasses; ++c) bytes_from[c] += o.bytes_from[c];
            bytes_uploaded += o.bytes_uploaded;
            bytes_downloaded += o.bytes_downloaded;
            segments_verified += o.segments_verified;
            segments_rejected += o.segments_rejected;
            return *this;
        }
    };
    Counters retired_;
    std::map<Hash32, Counters> last_;
    std::uint64_t hooks_ok_ = 0, hooks_failed_ = 0, downloads_completed_ = 0;
    std::uint64_t auto_fetches_ = 0, evictions_ = 0;
    // Automatic fetches waiting for their random start delay.
    std::map<Hash32, std::unique_ptr<transfer::Timer>> auto_pending_;
    std::vector<std::unique_ptr<transfer::Timer>> retired_timers_;  // fired; freed outside their callback
    // Automatic fetches waiting for their rollout wave, and the fractions an
    // operator raised per patch (widen statements, from the trust store).
    struct WaveWait {
        VerifiedManifest vm;
        core::WaveDecision decision;
        std::unique_ptr<transfer::Timer> timer;  // at the turn; none when only an operator can widen
    };
    std::map<Hash32, WaveWait> wave_wait_;
    std::map<Hash32, std::uint32_t> wave_override_;
    std::uint64_t wave_waits_ = 0;
    // Device policies: the vendor's live state (empty: not told; metered then
    // comes from the config), the month's upload count, the verdict in force.
    struct VendorState {
        std::optional<int> battery;
        bool on_ac = true;
        std::optional<bool> metered;
    };
    VendorState vendor_;
    core::UploadMonth month_;
    std::uint64_t month_sampled_ = 0;  // all patches' uploaded bytes at the last sample
    bool month_dirty_ = false;
    int month_save_tick_ = 0;
    core::PolicyVerdict verdict_;
    bool policy_applied_ = false;
    std::array<std::uint64_t, core::kUploadRefusals> refusals_{};  // times uploads were turned off, by reason
    std::uint64_t caching_refused_ = 0;
    std::string caching_refused_why_;
    std::unique_ptr<transfer::Timer> policy_timer_;
    // Cache LRU: unix milliseconds of each download's last use (added, completed).
    std::map<Hash32, std::int64_t> used_ms_;
    bool stopping_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ps::node
