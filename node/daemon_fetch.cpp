// Which patches the daemon takes on by itself: devices fetch mandatory
// patches when announced (after a random delay), super-nodes prefetch into a
// cache kept under the quota (core/cache.hpp decides what goes), the origin
// publishes; and every download's quota and rollback checks.
#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/cache.hpp"
#include "node/control.hpp"
#include "node/daemon.hpp"
#include "node/daemon_util.hpp"
#include "node/keys.hpp"
#include "node/log.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace daemon_util;

namespace {

constexpr std::uint64_t kAutoFetchRetryMs = 60'000;

}  // namespace

std::string Daemon::patches_dir() const {
    return cfg_.patches_dir.empty() ? cfg_.data_dir + "/patches" : cfg_.patches_dir;
}

// Where a patch added without an explicit path goes: PATCHES/NAME-vVERSION for
// a device, nowhere for a super-node (its cached copy stays in the data folder).
std::string Daemon::default_out(const VerifiedManifest& vm) const {
    if (setup_.identity.role == Role::Super) return {};
    std::error_code ec;
    fs::create_directories(patches_dir(), ec);
    return patches_dir() + "/" + vm.manifest.name + "-v" + std::to_string(vm.manifest.version);
}

Result<std::vector<Hash32>> Daemon::plan_room(const VerifiedManifest& vm) {
    if (!cfg_.quota) return std::vector<Hash32>{};
    auto now_loop = loop_.now_ms();
    auto now_unix = unix_now_ms();
    std::map<Hash32, std::uint64_t> served;
    for (auto& w : node_->status().swarms) served[w.id] = w.last_served_ms;
    // What may go to make room. A super-node's cached copies (no exported
    // file) are a cache: least recently used first, unless still downloading
    // or served within cache.busy. On a device, only older versions of the same
    // patch, which the new one supersedes anyway; what its user asked for stays.
    bool super = setup_.identity.role == Role::Super;
    std::vector<core::CacheEntry> entries;
    for (auto& [id, job] : jobs_) {
        auto m = manifests_.find(id);
        if (m == manifests_.end()) continue;
        core::CacheEntry e;
        e.id = id;
        e.size = m->second.manifest.total_size;
        std::uint64_t last = served.count(id) ? served[id] : 0;
        std::int64_t used = used_ms_.count(id) ? used_ms_[id] : 0;
        if (last) used = std::max<std::int64_t>(used, now_unix - std::int64_t(now_loop - last));
        e.last_used_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(used, 0));
        bool busy = job.state == JobState::Downloading || job.state == JobState::Paused ||
                    (last && now_loop - last < cfg_.cache_busy_ms);
        bool evictable = super ? job.out.empty()
                               : m->second.manifest.name == vm.manifest.name &&
                                     m->second.manifest.version < vm.manifest.version;
        e.pinned = busy || !evictable;
        entries.push_back(e);
    }
    auto plan = core::plan_eviction(entries, cfg_.quota, vm.manifest.total_size);
    if (plan.fits) return plan.evict;
    std::string desc = vm.manifest.name + " v" + std::to_string(vm.manifest.version) + " (" + wire::short_hex(vm.id) + ")";
    return err("quota: " + desc + " needs " + std::to_string(vm.manifest.total_size) + " bytes; " +
               std::to_string(plan.used) + " of the " + std::to_string(cfg_.quota) +
               "-byte quota (limits.quota) are in use by other downloads, " + std::to_string(plan.pinned) +
               (super ? " of them still downloading, being served, or not cached copies"
                      : " of them not older versions of this patch"));
}

std::string Daemon::add_download(const VerifiedManifest& vm, const std::string& out, const char* why) {
    auto st = add_job(vm, out, why);
    if (!st) return control::error_reply(st.error(), st.code(), {{"id", to_hex(vm.id)}});
    return ok_reply({{"id", to_hex(vm.id)}, {"name", vm.manifest.name}, {"version", vm.manifest.version}, {"out", out}});
}

Status Daemon::add_job(const VerifiedManifest& vm, const std::string& out, const char* why) {
    bool cache_only = out.empty() && setup_.identity.role == Role::Super;
    if (!cache_only) {
        if (out.empty() || out[0] != '/') return err("out must be an absolute path, not '" + out + "'");
        if (out.find('\n') != std::string::npos) return err("out must not contain a newline");
        auto parent = fs::path(out).parent_path();
        std::error_code ec;
        if (!fs::is_directory(parent, ec)) return err("out: folder " + parent.string() + " does not exist");
    }
    std::string desc = vm.manifest.name + " v" + std::to_string(vm.manifest.version) + " (" + wire::short_hex(vm.id) + ")";
    for (auto& id : node_->swarm_ids())
        if (id == vm.id) return err(control::kErrAlreadyHere, "patch " + desc + " is already here");
    if (auto st = rollback_->check(vm); !st) return err(control::kErrRollback, st.error());
    if (auto refused = caching_refusal(vm)) return err("policy: " + *refused);
    auto victims = plan_room(vm);
    if (!victims) return std::move(victims).take_error();
    if (auto st = rollback_->accept(vm); !st) return err(control::kErrRollback, st.error());
    jobs_[vm.id] = Job{out, JobState::Downloading, "", ""};
    used_ms_[vm.id] = unix_now_ms();
    if (auto st = start_download(vm, out, JobState::Downloading); !st) {
        jobs_.erase(vm.id);
        std::error_code ec2;
        fs::remove(job_dir(vm.id) + "/job", ec2);
        return st;
    }
    // Room is made once the new download is under way (its data arrives over
    // time): a download that cannot start evicts nothing.
    for (auto& id : *victims) {
        auto m = manifests_.find(id);
        std::string what = m != manifests_.end() ? m->second.manifest.name + " v" + std::to_string(m->second.manifest.version)
                                                 : std::string();
        log::info("evicted", {{"id", to_hex(id)}, {"name", what}, {"for", desc}});
        ++evictions_;
        (void)drop_patch(id);
    }
    log::info(why, {{"id", to_hex(vm.id)}, {"name", vm.manifest.name}, {"version", vm.manifest.version}, {"out", out}});
    return {};
}

void Daemon::on_announced(const VerifiedManifest& vm) {
    if (stopping_ || !node_) return;
    Role role = setup_.identity.role;
    bool prefetch = role == Role::Super && cfg_.prefetch;
    bool fetch = role == Role::Peer && cfg_.auto_fetch && vm.manifest.mandatory;
    if (!prefetch && !fetch) return;
    for (auto& id : node_->swarm_ids())
        if (id == vm.id) return;
    if (auto st = rollback_->check(vm); !st) {
        log::warn("announcement_refused", {{"id", to_hex(vm.id)}, {"reason", st.error()}});
        return;
    }
    if (auto_pending_.count(vm.id)) return;
    if (fetch && wave_hold(vm)) return;  // a staged rollout has not reached this device yet
    // Devices spread their start over the delay window (flash crowd); a cache,
    // and every node for an urgent patch, starts at once.
    bool spread = fetch && cfg_.start_delay_ms && !vm.manifest.urgent;
    std::uint64_t delay = spread ? crypto::random_u64() % (cfg_.start_delay_ms + 1) : 0;
    schedule_auto(vm, delay);
}

void Daemon::schedule_auto(const VerifiedManifest& vm, std::uint64_t delay) {
    if (stopping_ || auto_pending_.count(vm.id)) return;
    log::info("auto_fetch_scheduled",
              {{"id", to_hex(vm.id)}, {"name", vm.manifest.name}, {"version", vm.manifest.version}, {"delay_ms", delay}});
    auto t = std::make_unique<transfer::Timer>(loop_);
    t->start(delay, 0, [this, copy = vm] {
        // The timer goes away after this callback, not from inside it.
        auto done = auto_pending_.find(copy.id);
        if (done != auto_pending_.end()) {
            retired_timers_.push_back(std::move(done->second));
            auto_pending_.erase(done);
        }
        loop_.post([this, alive = std::weak_ptr<bool>(alive_)] {
            if (auto a = alive.lock(); a && *a) retired_timers_.clear();
        });
        if (stopping_) return;
        for (auto& id : node_->swarm_ids())
            if (id == copy.id) return;  // added by hand meanwhile
        if (setup_.trust.halted(copy.manifest.name, copy.manifest.version)) {  // halted during the delay
            log::warn("patch_halted", {{"name", copy.manifest.name}, {"version", copy.manifest.version}, {"was", "start delay"}});
            return;
        }
        auto added = add_job(copy, default_out(copy), "auto_fetch");
        if (added) {
            ++auto_fetches_;
            return;
        }
        const std::string& why = added.error();
        // A refusal that may pass later (quota, disk) is tried again in a
        // minute; a rollback never passes.
        bool again = added.code() != control::kErrRollback;
        log::warn("auto_fetch_failed", {{"id", to_hex(copy.id)}, {"name", copy.manifest.name}, {"reason", why},
                                        {"retry_s", again ? kAutoFetchRetryMs / 1000 : 0}});
        if (again)
            loop_.post([this, alive = std::weak_ptr<bool>(alive_), copy] {
                if (auto a = alive.lock(); a && *a) schedule_auto(copy, kAutoFetchRetryMs);
            });
    });
    auto_pending_[vm.id] = std::move(t);
}

std::string Daemon::cmd_publish(const std::string& manifest, const std::string& file) {
    if (setup_.identity.role != Role::Origin)
        return control::error_reply("only an origin publishes; this node's role is " +
                                    std::string(to_string(setup_.identity.role)));
    for (auto* p : {&manifest, &file})
        if (p->empty() || (*p)[0] != '/' || p->find('\n') != std::string::npos)
            return control::error_reply("'" + p->substr(0, 200) + "' must be an absolute path");
    auto vm = load_verified_manifest(manifest, setup_.trust, unix_now());
    if (!vm) return control::error_reply(manifest + ": " + vm.error());
    bool already = false;
    for (auto& id : node_->swarm_ids()) already |= id == vm->id;
    if (!already) {
        if (auto st = node_->serve(*vm, file); !st) return control::error_reply(file + ": " + st.error());
        manifests_[vm->id] = *vm;
        // Kept so that a restarted origin serves and announces it again.
        std::string dir = cfg_.data_dir + "/published/" + to_hex(vm->id);
        std::error_code ec;
        fs::create_directories(dir, ec);
        Status st = ec ? err("cannot create " + dir + ": " + ec.message()) : write_file_atomic(dir + "/manifest", vm->bytes, 0644);
        if (st) st = write_file_atomic(dir + "/file", as_bytes(file + "\n"), 0644);
        if (!st) log::error("publish_not_persisted", {{"id", to_hex(vm->id)}, {"reason", st.error()}});
    }
    node_->announce_manifest(*vm);  // to the peers connected now; later ones hear it when they connect
    log::info("published", {{"id", to_hex(vm->id)}, {"name", vm->manifest.name}, {"version", vm->manifest.version},
                            {"file", file}, {"peers", node_->connected_peers()}});
    return ok_reply({{"id", to_hex(vm->id)},
                     {"name", vm->manifest.name},
                     {"version", vm->manifest.version},
                     {"mandatory", vm->manifest.mandatory},
                     {"already", already},
                     {"peers", node_->connected_peers()}});
}

void Daemon::resume_published() {
    std::error_code ec;
    std::string root = cfg_.data_dir + "/published";
    for (auto& e : fs::directory_iterator(root, ec)) {
        std::string dir = e.path().string();
        auto mbytes = read_file_limited(dir + "/manifest", wire::kMaxManifestBytes);
        auto fbytes = read_file_limited(dir + "/file", 4096);
        if (!mbytes || !fbytes) {
            log::warn("published_skipped", {{"dir", dir}, {"reason", !mbytes ? mbytes.error() : fbytes.error()}});
            continue;
        }
        auto vm = verify_manifest_bytes(*mbytes, setup_.trust, unix_now());
        if (!vm) {
            log::warn("published_skipped", {{"dir", dir}, {"reason", "manifest: " + vm.error()}});
            continue;
        }
        std::string file(fbytes->begin(), fbytes->end());
        while (!file.empty() && file.back() == '\n') file.pop_back();
        if (manifests_.count(vm->id)) continue;  // also a [[serve]] entry
        if (auto st = node_->serve(*vm, file); !st) {
            log::warn("published_skipped", {{"dir", dir}, {"reason", file + ": " + st.error()}});
            continue;
        }
        manifests_[vm->id] = *vm;
        log::info("serving", {{"id", to_hex(vm->id)}, {"name", vm->manifest.name}, {"file", file}});
    }
}

}  // namespace ps::node
