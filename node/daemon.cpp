#include "node/daemon.hpp"

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <cmath>
#include <ctime>
#include <filesystem>

#include "core/cache.hpp"
#include "node/control.hpp"
#include "node/keys.hpp"
#include "node/log.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::uint64_t kAutoFetchRetryMs = 60'000;

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }
std::int64_t unix_now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

constexpr const char* kJobHeader = "patchswarm-job-v1";
constexpr std::size_t kMaxJobFile = 16 * 1024;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ok_reply(json j = json::object()) {
    j["v"] = control::kVersion;
    j["ok"] = true;
    return dump(j);
}

Result<crypto::SecretKey> node_key(const std::string& data_dir) {
    std::string sec = data_dir + "/node.secret", pub = data_dir + "/node.public";
    if (fs::exists(sec)) return load_secret_key(sec);
    auto kp = crypto::generate_keypair();
    if (auto st = write_keypair(sec, pub, kp); !st) return std::move(st).take_error();
    return kp.sk;
}

const char* source_key(int cls) {
    switch (static_cast<core::SourceClass>(cls)) {
        case core::SourceClass::SameDomainPeer: return "same_domain_peer";
        case core::SourceClass::SameDomainSuper: return "same_domain_super";
        case core::SourceClass::OtherDomain: return "other_domain";
        case core::SourceClass::Origin: return "origin";
    }
    return "unknown";
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

}  // namespace

// ---- setup ----

Result<Setup> make_setup(const DaemonConfig& c) {
    auto role = role_from_string(c.role.empty() ? "peer" : c.role);
    if (!role) return c.problem("node.role", "must be origin, super or peer, not '" + c.role + "'");
    if (!valid_domain(c.domain)) return c.problem("node.domain", "'" + c.domain + "' is not 1-63 characters of a-z, 0-9, -");
    auto ep = transfer::parse_endpoint(c.listen);
    if (!ep) return c.problem("node.listen", ep.error());
    auto trust = TrustStore::load(c.trust);
    if (!trust) return c.problem("node.trust", trust.error());
    std::error_code ec;
    fs::create_directories(c.data_dir, ec);
    if (ec) return c.problem("node.data", "cannot create " + c.data_dir + ": " + ec.message());
    auto key = node_key(c.data_dir);
    if (!key) return c.problem("node.data", "node key: " + key.error());

    Setup s{.opts = {}, .identity = {}, .trust = std::move(*trust)};
    s.opts.data_dir = c.data_dir;
    s.opts.listen_host = ep->first;
    s.opts.listen_port = ep->second;
    s.opts.advertise_host = c.advertise;
    s.opts.max_peers = c.max_peers;
    s.opts.upload_rate = c.upload_limit;
    s.opts.download_rate = c.download_limit;
    s.opts.uploads.slots = c.upload_slots ? c.upload_slots : default_upload_slots(*role);
    bool loopback = ep->first.rfind("127.", 0) == 0 || ep->first == "::1";
    s.opts.dht.bind4 = ep->first.find(':') == std::string::npos ? ep->first : "";
    s.opts.dht.bind6 = !c.dht_bind6.empty() ? c.dht_bind6 : (loopback ? "::1" : "::");
    s.opts.dht.port = c.dht_port;
    s.opts.dht.bootstrap = c.bootstrap;
    if (loopback) s.opts.dht.max_peer_req_per_sec = -1;  // every loopback peer shares one IP
    s.opts.trust = s.trust;  // gossip: announcements are believed only when they verify
    s.identity.secret = *key;
    s.identity.key = key->public_key();
    s.identity.role = *role;
    s.identity.domain = c.domain;
    return s;
}

// ---- the installer hook ----

HookRunner::~HookRunner() { alive_.reset(); }

void HookRunner::run(const std::vector<std::string>& argv, const VerifiedManifest& vm, const std::string& file,
                     std::function<void(bool, const std::string&)> done) {
    auto checked = std::make_shared<Status>();
    std::weak_ptr<bool> alive = alive_;
    wire::Manifest m = vm.manifest;
    std::vector<std::string> env{"PATCHSWARM_MANIFEST_ID=" + to_hex(vm.id), "PATCHSWARM_PATCH_NAME=" + vm.manifest.name,
                                 "PATCHSWARM_PATCH_VERSION=" + std::to_string(vm.manifest.version)};
    std::vector<std::string> args = argv;
    args.push_back(file);
    transfer::run_blocking(
        loop_, [checked, m, file] { *checked = check_patch_file(m, file); },
        [this, alive, checked, args, env, file, done] {
            if (!alive.lock()) return;
            if (!*checked) return done(false, "not run: " + file + ": " + checked->error());
            auto slot = procs_.insert(procs_.end(), nullptr);
            auto p = transfer::Process::spawn(loop_, args, env, [this, alive, slot, done](std::int64_t status, int sig) {
                if (!alive.lock()) return;
                std::string outcome = sig ? "signal " + std::to_string(sig) : "exit " + std::to_string(status);
                procs_.erase(slot);
                done(status == 0 && sig == 0, outcome);
            });
            if (!p) {
                procs_.erase(slot);
                return done(false, "not run: " + p.error());
            }
            *slot = std::move(*p);
        });
}

// ---- daemon ----

Daemon::Daemon(transfer::Loop& loop, DaemonConfig cfg, ConfigSource reload, Setup setup)
    : loop_(loop), cfg_(std::move(cfg)), reload_(std::move(reload)), setup_(std::move(setup)), hooks_(loop) {}

Daemon::~Daemon() {
    *alive_ = false;
    node_.reset();  // its callbacks point here
    control_.reset();
    metrics_.reset();
}

Result<std::unique_ptr<Daemon>> Daemon::start(transfer::Loop& loop, DaemonConfig cfg, ConfigSource reload) {
    if (auto st = validate_config(cfg); !st) return std::move(st).take_error();
    log::set_level(*log::parse_level(cfg.log_level));
    auto setup = make_setup(cfg);
    if (!setup) return std::move(setup).take_error();
    std::unique_ptr<Daemon> d(new Daemon(loop, std::move(cfg), std::move(reload), std::move(*setup)));
    if (auto st = d->begin(); !st) return std::move(st).take_error();
    return d;
}

Status Daemon::begin() {
    // The control socket first: a second node on the same data folder stops here.
    if (auto path = cfg_.control_path(); !path.empty()) {
        transfer::LocalServer::Limits lim;
        lim.max_line = control::kMaxRequestLine;
        lim.overflow_reply = control::error_reply("request line longer than " + std::to_string(lim.max_line) + " bytes");
        auto srv = transfer::LocalServer::start(
            loop_, path,
            [this](std::string_view line, transfer::LocalServer::Respond respond) { handle_control(line, std::move(respond)); },
            lim);
        if (!srv) return cfg_.problem("control.socket", srv.error());
        control_ = std::move(*srv);
    }
    auto guard = RollbackGuard::load(cfg_.data_dir + "/accepted");
    if (!guard) return cfg_.problem("node.data", guard.error() + " (remove the file to start over)");
    rollback_ = std::move(*guard);
    setup_.opts.on_announce = [this](const VerifiedManifest& vm) { on_announced(vm); };
    node_ = std::make_unique<Node>(loop_, setup_.opts, setup_.identity);
    if (auto st = node_->start(); !st) return st;
    for (std::size_t i = 0; i < cfg_.serve.size(); ++i) {
        auto& e = cfg_.serve[i];
        std::string key = cfg_.cli.count("serve") ? "serve" : "serve[" + std::to_string(i) + "]";
        auto vm = load_verified_manifest(e.manifest, setup_.trust, unix_now());
        if (!vm) return cfg_.problem(key, e.manifest + ": " + vm.error());
        if (auto st = node_->serve(*vm, e.file); !st) return cfg_.problem(key, e.file + ": " + st.error());
        manifests_[vm->id] = *vm;
        log::info("serving", {{"id", to_hex(vm->id)}, {"name", vm->manifest.name}, {"version", vm->manifest.version},
                              {"file", e.file}});
        std::printf("serving %s v%llu (%s) from %s\n", vm->manifest.name.c_str(),
                    static_cast<unsigned long long>(vm->manifest.version), to_hex(vm->id).c_str(), e.file.c_str());
    }
    resume_published();
    resume_downloads();
    if (!cfg_.metrics.empty()) {
        auto ep = transfer::parse_endpoint(cfg_.metrics);
        if (!ep) return cfg_.problem("control.metrics", ep.error());
        auto srv = transfer::HttpServer::start(loop_, ep->first, ep->second, [this](std::string_view path) {
            if (path != "/metrics") return transfer::HttpResponse{404, "text/plain; charset=utf-8", "not found; try /metrics\n"};
            return transfer::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
        });
        if (!srv) return cfg_.problem("control.metrics", srv.error());
        metrics_ = std::move(*srv);
    }
    log::info("started", {{"role", std::string(to_string(setup_.identity.role))}, {"domain", cfg_.domain},
                          {"listen_port", node_->listen_port()}, {"dht_port", node_->dht_port()},
                          {"control", cfg_.control_path()}, {"downloads", jobs_.size()}});
    return {};
}

std::string Daemon::ready_line() const {
    std::string s = "ready role=" + std::string(to_string(setup_.identity.role)) + " domain=" + cfg_.domain +
                    " listen=" + setup_.opts.listen_host + ":" + std::to_string(node_->listen_port()) +
                    " dht=" + std::to_string(node_->dht_port()) + " key=" + to_hex(setup_.identity.key);
    if (control_) s += " control=" + control_->path();
    if (metrics_) {
        auto ep = transfer::parse_endpoint(cfg_.metrics);
        s += " metrics=" + (ep ? ep->first : std::string("?")) + ":" + std::to_string(metrics_->port());
    }
    return s;
}

std::string Daemon::job_dir(const Hash32& id) const { return cfg_.data_dir + "/" + to_hex(id); }

Status Daemon::save_job(const Hash32& id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return {};
    const Job& j = it->second;
    const char* state = j.state == JobState::Paused     ? "paused"
                        : j.state == JobState::Complete ? "complete"
                        : j.state == JobState::Failed   ? "failed"
                                                        : "downloading";
    std::string text = std::string(kJobHeader) + "\nout=" + j.out + "\nstate=" + state + "\n";
    if (!j.hook.empty()) text += "hook=" + j.hook + "\n";
    auto st = write_file_atomic(job_dir(id) + "/job", as_bytes(text), 0600);
    if (!st) log::error("job_save_failed", {{"id", to_hex(id)}, {"reason", st.error()}});
    return st;
}

void Daemon::resume_downloads() {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(cfg_.data_dir, ec)) {
        std::string name = e.path().filename().string();
        if (!e.is_directory() || name.size() != 64 || name.find_first_not_of("0123456789abcdef") != std::string::npos)
            continue;
        std::string dir = e.path().string();
        if (!fs::exists(dir + "/job") || !fs::exists(dir + "/manifest")) continue;
        auto fail = [&](const std::string& why) { log::warn("resume_skipped", {{"dir", dir}, {"reason", why}}); };
        auto job_bytes = read_file_limited(dir + "/job", kMaxJobFile);
        if (!job_bytes) {
            fail(job_bytes.error());
            continue;
        }
        std::string text(job_bytes->begin(), job_bytes->end());
        Job job;
        std::string state;
        bool header = false;
        std::size_t pos = 0;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            pos = nl == std::string::npos ? text.size() : nl + 1;
            if (!header) {
                header = line == kJobHeader;
                if (!header) break;
                continue;
            }
            if (line.rfind("out=", 0) == 0) job.out = line.substr(4);
            else if (line.rfind("state=", 0) == 0) state = line.substr(6);
            else if (line.rfind("hook=", 0) == 0) job.hook = line.substr(5);
        }
        if (!header || state.empty() || (job.out.empty() && setup_.identity.role != Role::Super)) {
            // (an empty out is a super-node's cached copy; other roles always export)
            fail("job file is not in the patchswarm-job-v1 format");
            continue;
        }
        job.state = state == "paused" ? JobState::Paused : state == "complete" ? JobState::Complete
                                                         : state == "failed"   ? JobState::Failed
                                                                               : JobState::Downloading;
        auto mbytes = read_file_limited(dir + "/manifest", wire::kMaxManifestBytes);
        if (!mbytes) {
            fail(mbytes.error());
            continue;
        }
        auto vm = verify_manifest_bytes(*mbytes, setup_.trust, unix_now());
        if (!vm) {
            fail("manifest: " + vm.error());
            continue;
        }
        if (to_hex(vm->id) != name) {
            fail("manifest id does not match the folder name");
            continue;
        }
        if (job.state == JobState::Failed) job.state = JobState::Downloading;  // try again
        std::string hook = job.hook;
        // Cache LRU: the job file was last written when the download was added,
        // paused, or completed; good enough as "last used" across a restart.
        auto mtime = fs::last_write_time(dir + "/job", ec);
        used_ms_[vm->id] = ec ? unix_now_ms()
                              : std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                                    .count();
        jobs_[vm->id] = job;
        if (auto st = start_download(*vm, job.out, job.state); !st) {
            jobs_.erase(vm->id);
            fail(st.error());
            continue;
        }
        log::info("resumed", {{"id", to_hex(vm->id)}, {"name", vm->manifest.name}, {"state", state},
                              {"held", node_->stats(vm->id) ? node_->stats(vm->id)->segments_verified : 0}});
        // A hook that had not finished when the node stopped runs again (the
        // file is checked first): installers must be idempotent; a patch must
        // not be left uninstalled.
        if (job.state == JobState::Complete && hook == "pending" && !cfg_.on_complete.empty()) {
            VerifiedManifest copy = *vm;
            loop_.post([this, alive = std::weak_ptr<bool>(alive_), copy] {
                auto a = alive.lock();
                if (!a || !*a || stopping_) return;
                auto it = jobs_.find(copy.id);
                if (it == jobs_.end()) return;
                it->second.state = JobState::Downloading;  // so that completion runs the hook
                on_download_done(copy, Status{});
            });
        }
    }
}

Status Daemon::start_download(const VerifiedManifest& vm, const std::string& out, JobState state) {
    std::string dir = job_dir(vm.id);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return err("cannot create " + dir + ": " + ec.message());
    if (auto st = write_file_atomic(dir + "/manifest", vm.bytes, 0644); !st) return st;
    manifests_[vm.id] = vm;
    if (auto st = save_job(vm.id); !st) return st;
    bool done_before = state == JobState::Complete;
    Hash32 id = vm.id;
    // A finished download is served from its folder; it is not exported again.
    auto st = node_->fetch(vm, done_before ? std::string() : out, [this, id](Status s) {
        auto it = manifests_.find(id);
        if (it != manifests_.end()) on_download_done(it->second, std::move(s));
    });
    if (!st) return st;
    if (state == JobState::Paused) (void)node_->pause(vm.id);
    return {};
}

void Daemon::on_download_done(const VerifiedManifest& vm, Status st) {
    auto it = jobs_.find(vm.id);
    if (it == jobs_.end()) return;
    Job& job = it->second;
    if (job.state == JobState::Complete) return;  // resumed after it had finished
    std::string id = to_hex(vm.id);
    if (!st) {
        job.state = JobState::Failed;
        job.error = st.error();
        (void)save_job(vm.id);
        log::error("download_failed", {{"id", id}, {"name", vm.manifest.name}, {"reason", st.error()}});
        return;
    }
    job.state = JobState::Complete;
    job.error.clear();
    ++downloads_completed_;
    used_ms_[vm.id] = unix_now_ms();
    // A device keeps one version of a patch: older ones of the same name stop
    // (their download folders go; exported copies stay where the installer
    // put them). Outside this callback: the node is in the middle of finishing.
    if (setup_.identity.role == Role::Peer)
        loop_.post([this, alive = std::weak_ptr<bool>(alive_), name = vm.manifest.name, version = vm.manifest.version] {
            auto a = alive.lock();
            if (!a || !*a || stopping_) return;
            std::vector<Hash32> older;
            for (auto& [mid, m] : manifests_)
                if (m.manifest.name == name && m.manifest.version < version && jobs_.count(mid)) older.push_back(mid);
            for (auto& old : older) {
                log::info("superseded", {{"id", to_hex(old)}, {"name", name},
                                         {"version", manifests_[old].manifest.version}, {"by", version}});
                (void)drop_patch(old);
            }
        });
    auto* s = node_->stats(vm.id);
    log::info("download_complete",
              {{"id", id}, {"name", vm.manifest.name}, {"version", vm.manifest.version}, {"out", job.out},
               {"secs", s && s->completed_ms ? double(*s->completed_ms - s->started_ms) / 1000.0 : 0.0}});
    if (cfg_.on_complete.empty() || job.out.empty()) {  // a cached copy has no file to install
        (void)save_job(vm.id);
        return;
    }
    job.hook = "pending";
    (void)save_job(vm.id);
    Hash32 hid = vm.id;
    hooks_.run(cfg_.on_complete, vm, job.out, [this, hid, id](bool ok, const std::string& outcome) {
        ok ? ++hooks_ok_ : ++hooks_failed_;
        if (ok) log::info("hook_done", {{"id", id}, {"outcome", outcome}});
        else log::warn("hook_failed", {{"id", id}, {"outcome", outcome}});
        auto j = jobs_.find(hid);
        if (j == jobs_.end()) return;
        j->second.hook = outcome;
        (void)save_job(hid);
    });
}

// ---- control ----

Result<Hash32> Daemon::select(const std::string& sel) const {
    if (sel.empty()) return err("empty patch selector: give a manifest id prefix or a patch name");
    std::string lower;
    for (char c : sel) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool hex = lower.find_first_not_of("0123456789abcdef") == std::string::npos;
    std::vector<Hash32> by_id, by_name;
    for (auto& id : node_->swarm_ids()) {
        if (hex && to_hex(id).rfind(lower, 0) == 0) by_id.push_back(id);
        auto m = manifests_.find(id);
        if (m != manifests_.end() && m->second.manifest.name == sel) by_name.push_back(id);
    }
    auto& hits = !by_id.empty() ? by_id : by_name;
    if (hits.empty()) return err("no patch matches '" + sel.substr(0, 80) + "'");
    if (hits.size() > 1) {
        std::string ids;
        for (auto& h : hits) ids += " " + wire::short_hex(h);
        return err("'" + sel.substr(0, 80) + "' matches " + std::to_string(hits.size()) + " patches:" + ids +
                   "; give more of the manifest id");
    }
    return hits[0];
}

std::uint64_t Daemon::reserved_bytes() const {
    std::uint64_t n = 0;
    for (auto& [id, job] : jobs_) {
        auto m = manifests_.find(id);
        if (m != manifests_.end()) n += m->second.manifest.total_size;
    }
    return n;
}

void Daemon::handle_control(std::string_view line, std::function<void(std::string)> respond) {
    if (stopping_) return respond(control::error_reply("the node is shutting down"));
    auto req = control::parse_request(line);
    if (!req) return respond(control::error_reply(req.error()));
    log::debug("control", {{"cmd", req->cmd}});
    auto arg = [&](const char* k) { return req->arg(k) ? *req->arg(k) : std::string(); };
    try {
        if (req->cmd == "status") return respond(cmd_status(req->arg("patch")));
        if (req->cmd == "list") return respond(cmd_list());
        if (req->cmd == "add") {
            if (req->arg("manifest") && req->arg("name"))
                return respond(control::error_reply("add takes a manifest or a name, not both"));
            if (req->arg("name")) return cmd_add_by_name(arg("name"), arg("out"), respond);
            if (!req->arg("manifest")) return respond(control::error_reply("add needs a manifest or a name"));
            return respond(cmd_add(arg("manifest"), arg("out")));
        }
        if (req->cmd == "pause") return respond(cmd_pause_resume(arg("patch"), true));
        if (req->cmd == "resume") return respond(cmd_pause_resume(arg("patch"), false));
        if (req->cmd == "remove") return respond(cmd_remove(arg("patch")));
        if (req->cmd == "publish") return respond(cmd_publish(arg("manifest"), arg("file")));
        if (req->cmd == "rollout") return cmd_rollout(arg("name"), req->arg("version"), respond);
        if (req->cmd == "reload") {
            if (auto st = reload(); !st) return respond(control::error_reply(st.error()));
            return respond(ok_reply());
        }
    } catch (const std::exception& e) {  // nlohmann; never across the loop
        return respond(control::error_reply(std::string("internal error: ") + e.what()));
    }
    respond(control::error_reply("unknown command '" + req->cmd + "'"));
}

std::string Daemon::cmd_status(const std::string* patch) {
    std::optional<Hash32> only;
    if (patch) {
        auto id = select(*patch);
        if (!id) return control::error_reply(id.error());
        only = *id;
    }
    NodeStatus ns = node_->status();
    json node{{"key", to_hex(ns.key)},
              {"role", std::string(to_string(ns.role))},
              {"domain", ns.domain},
              {"listen_port", ns.listen_port},
              {"dht_port", ns.dht_port},
              {"peers", ns.peers},
              {"dht_nodes", ns.dht_nodes},
              {"contacts", ns.contacts},
              {"upload_limit", ns.upload_rate_limit},
              {"download_limit", ns.download_rate_limit},
              {"quota", cfg_.quota}, {"auto_fetches", auto_fetches_}, {"auto_pending", auto_pending_.size()}, {"evictions", evictions_},
              {"reserved", reserved_bytes()},
              {"announces_received", ns.announces_received},
              {"announces_rejected", ns.announces_rejected},
              {"dht",
               {{"gets", ns.dht.gets},
                {"puts", ns.dht.puts},
                {"listens", ns.dht.listens},
                {"values_received", ns.dht.values_received},
                {"values_dropped", ns.dht.values_dropped}}}};
    json patches = json::array();
    std::uint64_t uploaded = 0;
    double rate_up = 0, rate_down = 0;
    for (auto& w : ns.swarms) {
        uploaded += w.stats.bytes_uploaded;
        rate_up += w.rate_up;
        rate_down += w.rate_down;
        if (only && w.id != *only) continue;
        auto job = jobs_.find(w.id);
        std::string state = !w.downloading ? "serving" : w.complete ? "complete" : w.paused ? "paused" : "downloading";
        json p{{"id", to_hex(w.id)},
               {"name", w.name},
               {"version", w.version},
               {"size", w.total_size},
               {"segments", w.segments},
               {"held", w.held},
               {"progress", w.segments ? double(w.held) / w.segments : 1.0},
               {"state", state},
               {"rate_down", std::round(w.rate_down)},
               {"rate_up", std::round(w.rate_up)},
               {"bytes_downloaded", w.stats.bytes_downloaded},
               {"bytes_uploaded", w.stats.bytes_uploaded},
               {"segments_verified", w.stats.segments_verified},
               {"segments_rejected", w.stats.segments_rejected},
               {"banned", w.stats.banned.size()}};
        json from = json::object();
        for (int c = 0; c < core::kSourceClasses; ++c) from[source_key(c)] = w.stats.bytes_from[c];
        p["bytes_from"] = from;
        // Wall-clock times (unix seconds), for comparing nodes: when this node
        // started on the patch and when it completed it.
        double now_unix = double(unix_now_ms()) / 1000.0, now_loop = double(loop_.now_ms()) / 1000.0;
        p["started_unix"] = now_unix - (now_loop - double(w.stats.started_ms) / 1000.0);
        p["completed_unix"] = w.stats.completed_ms ? json(now_unix - (now_loop - double(*w.stats.completed_ms) / 1000.0))
                                                   : json(nullptr);
        p["seconds_to_complete"] =
            w.stats.completed_ms ? json(double(*w.stats.completed_ms - w.stats.started_ms) / 1000.0) : json(nullptr);
        std::uint64_t left = 0;
        if (w.segments && w.held < w.segments)
            left = w.total_size - std::min<std::uint64_t>(w.total_size, std::uint64_t(w.held) * wire::kDefaultSegmentSize);
        p["eta_seconds"] = state == "downloading" && w.rate_down > 1 ? json(std::round(double(left) / w.rate_down)) : json(nullptr);
        if (job != jobs_.end()) {
            p["out"] = job->second.out;
            if (job->second.state == JobState::Failed) {
                p["state"] = "failed";
                p["error"] = job->second.error;
            }
            if (!job->second.hook.empty()) p["hook"] = job->second.hook;
        } else {
            p["out"] = w.out_path;
        }
        patches.push_back(std::move(p));
    }
    json j{{"node", node},
           {"patches", patches},
           {"uploads", {{"peers", ns.upload_peers}, {"bytes", uploaded}, {"rate", std::round(rate_up)}}},
           {"downloads", {{"rate", std::round(rate_down)}}}};
    return ok_reply(std::move(j));
}

std::string Daemon::cmd_list() {
    json patches = json::array();
    for (auto& w : node_->status().swarms) {
        auto job = jobs_.find(w.id);
        std::string state = !w.downloading ? "serving" : w.complete ? "complete" : w.paused ? "paused" : "downloading";
        if (job != jobs_.end() && job->second.state == JobState::Failed) state = "failed";
        patches.push_back({{"id", to_hex(w.id)},
                           {"name", w.name},
                           {"version", w.version},
                           {"state", state},
                           {"progress", w.segments ? double(w.held) / w.segments : 1.0},
                           {"out", job != jobs_.end() ? job->second.out : w.out_path}});
    }
    return ok_reply({{"patches", patches}});
}

std::string Daemon::cmd_add(const std::string& manifest, const std::string& out) {
    auto vm = load_verified_manifest(manifest, setup_.trust, unix_now());
    if (!vm) return control::error_reply(manifest + ": " + vm.error());
    return add_download(*vm, out.empty() ? default_out(*vm) : out, "added");
}

void Daemon::cmd_add_by_name(const std::string& name, const std::string& out, std::function<void(std::string)> respond) {
    if (!wire::valid_patch_name(name))
        return respond(control::error_reply("'" + name.substr(0, 80) + "' is not a patch name ([a-z0-9._-], at most 64)"));
    node_->find_manifest(name, [this, name, out, respond](std::optional<VerifiedManifest> vm) {
        if (stopping_) return respond(control::error_reply("the node is shutting down"));
        if (!vm)
            return respond(control::error_reply("no manifest named '" + name +
                                                "' is known: none was announced to this node, and none is in the DHT"));
        respond(add_download(*vm, out.empty() ? default_out(*vm) : out, "added"));
    });
}

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
    bool cache_only = out.empty() && setup_.identity.role == Role::Super;
    if (!cache_only) {
        if (out.empty() || out[0] != '/') return control::error_reply("out must be an absolute path, not '" + out + "'");
        if (out.find('\n') != std::string::npos) return control::error_reply("out must not contain a newline");
        auto parent = fs::path(out).parent_path();
        std::error_code ec;
        if (!fs::is_directory(parent, ec)) return control::error_reply("out: folder " + parent.string() + " does not exist");
    }
    std::string desc = vm.manifest.name + " v" + std::to_string(vm.manifest.version) + " (" + wire::short_hex(vm.id) + ")";
    for (auto& id : node_->swarm_ids())
        if (id == vm.id) return control::error_reply("patch " + desc + " is already here");
    if (auto st = rollback_->check(vm); !st) return control::error_reply(st.error());
    auto victims = plan_room(vm);
    if (!victims) return control::error_reply(victims.error());
    if (auto st = rollback_->accept(vm); !st) return control::error_reply(st.error());
    jobs_[vm.id] = Job{out, JobState::Downloading, "", ""};
    used_ms_[vm.id] = unix_now_ms();
    if (auto st = start_download(vm, out, JobState::Downloading); !st) {
        jobs_.erase(vm.id);
        std::error_code ec2;
        fs::remove(job_dir(vm.id) + "/job", ec2);
        return control::error_reply(st.error());
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
    return ok_reply({{"id", to_hex(vm.id)}, {"name", vm.manifest.name}, {"version", vm.manifest.version}, {"out", out}});
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
    // Devices spread their start over the delay window (flash crowd); a cache starts at once.
    std::uint64_t delay = fetch && cfg_.start_delay_ms ? crypto::random_u64() % (cfg_.start_delay_ms + 1) : 0;
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
        auto j = json::parse(add_download(copy, default_out(copy), "auto_fetch"), nullptr, false);
        if (j.is_object() && j.value("ok", false)) {
            ++auto_fetches_;
            return;
        }
        std::string why = j.is_object() ? j.value("error", std::string()) : std::string();
        // A refusal that may pass later (quota, disk) is tried again in a
        // minute; a rollback never passes.
        bool again = why.rfind("rollback:", 0) != 0;
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

void Daemon::cmd_rollout(const std::string& name, const std::string* version, std::function<void(std::string)> respond) {
    std::uint64_t want = 0;
    if (version) {
        if (version->empty() || version->size() > 18 || version->find_first_not_of("0123456789") != std::string::npos ||
            std::stoull(*version) == 0)
            return respond(control::error_reply("version '" + version->substr(0, 32) + "' is not a number >= 1"));
        want = std::stoull(*version);
    }
    auto run = [this, respond](const VerifiedManifest& vm) {
        node_->rollout(vm.id, {}, [vm, respond](Rollout r) {
            json domains = json::array();
            std::uint64_t online = 0, holders = 0, complete = 0;
            for (auto& d : r.domains) {
                online += d.online;
                holders += d.holders;
                complete += d.complete;
                domains.push_back({{"domain", d.domain},
                                   {"online", d.online},
                                   {"holders", d.holders},
                                   {"complete", d.complete},
                                   {"supers", d.supers},
                                   {"supers_complete", d.supers_complete},
                                   {"segments_held", d.segments_held},
                                   {"segments_total", d.segments_total}});
            }
            respond(ok_reply({{"id", to_hex(vm.id)},
                              {"name", vm.manifest.name},
                              {"version", vm.manifest.version},
                              {"domains", domains},
                              {"online", online},
                              {"holders", holders},
                              {"complete", complete},
                              {"capped", r.capped}}));
        });
    };
    // A manifest this node serves or downloads first (the version asked for, or
    // its newest), else the newest the network knows under the name.
    const VerifiedManifest* best = nullptr;
    for (auto& [id, vm] : manifests_)
        if (vm.manifest.name == name &&
            (want ? vm.manifest.version == want : !best || vm.manifest.version > best->manifest.version))
            best = &vm;
    if (best) return run(*best);
    node_->find_manifest(name, [this, name, want, respond, run](std::optional<VerifiedManifest> vm) {
        if (stopping_) return respond(control::error_reply("the node is shutting down"));
        if (!vm || (want && vm->manifest.version != want))
            return respond(control::error_reply(
                "no manifest named '" + name.substr(0, 80) + "'" +
                (want ? " of version " + std::to_string(want) +
                            " is known here: a node knows the versions it holds and the newest one announced"
                      : " is known to this node or in the DHT")));
        run(*vm);
    });
}

std::string Daemon::cmd_pause_resume(const std::string& patch, bool pause) {
    auto id = select(patch);
    if (!id) return control::error_reply(id.error());
    auto st = pause ? node_->pause(*id) : node_->resume(*id);
    if (!st) return control::error_reply(st.error());
    auto job = jobs_.find(*id);
    if (job != jobs_.end() && (job->second.state == JobState::Downloading || job->second.state == JobState::Paused)) {
        job->second.state = pause ? JobState::Paused : JobState::Downloading;
        (void)save_job(*id);
    }
    log::info(pause ? "paused" : "resumed", {{"id", to_hex(*id)}});
    return ok_reply({{"id", to_hex(*id)}});
}

std::string Daemon::cmd_remove(const std::string& patch) {
    auto id = select(patch);
    if (!id) return control::error_reply(id.error());
    if (auto st = drop_patch(*id); !st) return control::error_reply(st.error());
    log::info("removed", {{"id", to_hex(*id)}});
    return ok_reply({{"id", to_hex(*id)}});
}

Status Daemon::drop_patch(const Hash32& id) {
    fold_totals();
    auto st = node_->remove(id);
    if (auto l = last_.find(id); l != last_.end()) {
        for (int c = 0; c < core::kSourceClasses; ++c) retired_.bytes_from[c] += l->second.bytes_from[c];
        retired_.bytes_uploaded += l->second.bytes_uploaded;
        retired_.bytes_downloaded += l->second.bytes_downloaded;
        retired_.segments_verified += l->second.segments_verified;
        retired_.segments_rejected += l->second.segments_rejected;
        last_.erase(l);
    }
    jobs_.erase(id);
    manifests_.erase(id);
    used_ms_.erase(id);
    std::error_code ec;
    fs::remove_all(cfg_.data_dir + "/published/" + to_hex(id), ec);
    return st;
}

Status Daemon::reload() {
    if (!reload_) return err("reload: this node has no configuration to re-read");
    auto c = reload_();
    if (!c) {
        log::error("reload_failed", {{"reason", c.error()}});
        return err("reload: " + c.error());
    }
    if (auto st = validate_config(*c); !st) {
        log::error("reload_failed", {{"reason", st.error()}});
        return err("reload: " + st.error());
    }
    // What only a restart changes: say so rather than silently ignore it.
    auto restart = [&](const char* key, bool changed) {
        if (changed) log::warn("reload_needs_restart", {{"key", key}});
    };
    restart("node.data", c->data_dir != cfg_.data_dir);
    restart("node.role", c->role != cfg_.role);
    restart("node.domain", c->domain != cfg_.domain);
    restart("node.listen", c->listen != cfg_.listen);
    restart("node.trust", c->trust != cfg_.trust);
    restart("dht", c->dht_port != cfg_.dht_port || c->bootstrap != cfg_.bootstrap);
    restart("control", c->control_socket != cfg_.control_socket || c->metrics != cfg_.metrics);
    if (c->upload_slots != cfg_.upload_slots) {
        auto role = role_from_string(cfg_.role);
        node_->set_upload_slots(c->upload_slots ? c->upload_slots : default_upload_slots(role.value_or(Role::Peer)));
        cfg_.upload_slots = c->upload_slots;
    }
    node_->set_rate_limits(c->upload_limit, c->download_limit);
    cfg_.upload_limit = c->upload_limit;
    cfg_.download_limit = c->download_limit;
    cfg_.quota = c->quota;
    cfg_.on_complete = c->on_complete;
    cfg_.auto_fetch = c->auto_fetch;
    cfg_.start_delay_ms = c->start_delay_ms;
    cfg_.patches_dir = c->patches_dir;
    cfg_.prefetch = c->prefetch;
    cfg_.cache_busy_ms = c->cache_busy_ms;
    cfg_.log_level = c->log_level;
    log::set_level(*log::parse_level(c->log_level));
    log::info("reloaded", {{"upload_limit", cfg_.upload_limit}, {"download_limit", cfg_.download_limit},
                           {"quota", cfg_.quota}, {"log_level", cfg_.log_level}});
    return {};
}

void Daemon::shutdown(std::function<void()> done) {
    if (stopping_) return;
    stopping_ = true;
    log::info("stopping", {});
    auto_pending_.clear();
    control_.reset();  // no new requests; the socket path is removed
    metrics_.reset();
    node_->shutdown([alive = std::weak_ptr<bool>(alive_), done = std::move(done)] {
        log::info("stopped", {});
        if (done) done();
    });
}

// ---- metrics ----

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
    Counters t = retired_;
    for (auto& [id, c] : last_) {
        for (int k = 0; k < core::kSourceClasses; ++k) t.bytes_from[k] += c.bytes_from[k];
        t.bytes_uploaded += c.bytes_uploaded;
        t.bytes_downloaded += c.bytes_downloaded;
        t.segments_verified += c.segments_verified;
        t.segments_rejected += c.segments_rejected;
    }
    NodeStatus ns = node_->status();
    std::string o;
    auto metric = [&](const char* name, const char* type, const char* help) {
        o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto sample = [&](const std::string& name, std::uint64_t v, const std::string& labels = "") {
        o += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
    };
    metric("patchswarm_bytes_received_total", "counter", "Segment bytes received, by source class.");
    for (int c = 0; c < core::kSourceClasses; ++c)
        sample("patchswarm_bytes_received_total", t.bytes_from[c], std::string("source=\"") + source_key(c) + "\"");
    metric("patchswarm_bytes_verified_total", "counter", "Segment bytes that verified and were stored.");
    sample("patchswarm_bytes_verified_total", t.bytes_downloaded);
    metric("patchswarm_bytes_uploaded_total", "counter", "Segment bytes sent to peers.");
    sample("patchswarm_bytes_uploaded_total", t.bytes_uploaded);
    metric("patchswarm_segments_verified_total", "counter", "Segments that matched the signed manifest.");
    sample("patchswarm_segments_verified_total", t.segments_verified);
    metric("patchswarm_segments_rejected_total", "counter", "Segments that failed their hash (the sender is banned).");
    sample("patchswarm_segments_rejected_total", t.segments_rejected);
    std::uint64_t bans = 0;
    for (auto& w : ns.swarms) bans += w.stats.banned.size();
    metric("patchswarm_banned_peers", "gauge", "Peers banned for a patch, summed over patches.");
    sample("patchswarm_banned_peers", bans);
    metric("patchswarm_peers", "gauge", "Authenticated peer connections.");
    sample("patchswarm_peers", ns.peers);
    metric("patchswarm_upload_peers", "gauge", "Peers holding an upload slot.");
    sample("patchswarm_upload_peers", ns.upload_peers);
    metric("patchswarm_known_contacts", "gauge", "Contacts in the passive view.");
    sample("patchswarm_known_contacts", ns.contacts);
    metric("patchswarm_dht_nodes", "gauge", "Good DHT routing-table entries.");
    sample("patchswarm_dht_nodes", ns.dht_nodes);
    metric("patchswarm_dht_operations_total", "counter", "DHT operations started, by kind.");
    sample("patchswarm_dht_operations_total", ns.dht.gets, "op=\"get\"");
    sample("patchswarm_dht_operations_total", ns.dht.puts, "op=\"put\"");
    sample("patchswarm_dht_operations_total", ns.dht.listens, "op=\"listen\"");
    metric("patchswarm_dht_values_received_total", "counter", "DHT values received.");
    sample("patchswarm_dht_values_received_total", ns.dht.values_received);
    metric("patchswarm_dht_values_dropped_total", "counter", "DHT values dropped (over the per-get bound or malformed).");
    sample("patchswarm_dht_values_dropped_total", ns.dht.values_dropped);
    metric("patchswarm_dht_refused_total", "counter", "DHT records refused, by side.");
    sample("patchswarm_dht_refused_total", ns.dht.announces_refused, "side=\"announce\"");
    sample("patchswarm_dht_refused_total", ns.dht.stores_refused, "side=\"store\"");
    metric("patchswarm_announcements_total", "counter", "Manifest announcements received by gossip, by outcome.");
    sample("patchswarm_announcements_total", ns.announces_received - ns.announces_rejected, "result=\"accepted\"");
    sample("patchswarm_announcements_total", ns.announces_rejected, "result=\"rejected\"");
    metric("patchswarm_rate_limit_bytes_per_second", "gauge", "Configured rate limits (0 = none).");
    sample("patchswarm_rate_limit_bytes_per_second", ns.upload_rate_limit, "direction=\"upload\"");
    sample("patchswarm_rate_limit_bytes_per_second", ns.download_rate_limit, "direction=\"download\"");
    metric("patchswarm_downloads_completed_total", "counter", "Downloads completed and exported since start.");
    sample("patchswarm_downloads_completed_total", downloads_completed_);
    metric("patchswarm_auto_fetches_total", "counter", "Downloads started on an announcement (device auto-fetch, super-node prefetch).");
    sample("patchswarm_auto_fetches_total", auto_fetches_);
    metric("patchswarm_cache_evictions_total", "counter", "Cached patches evicted to stay under the quota.");
    sample("patchswarm_cache_evictions_total", evictions_);
    metric("patchswarm_hooks_total", "counter", "On-complete hook runs since start, by outcome.");
    sample("patchswarm_hooks_total", hooks_ok_, "result=\"ok\"");
    sample("patchswarm_hooks_total", hooks_failed_, "result=\"failed\"");
    metric("patchswarm_patch_segments_held", "gauge", "Segments held, per patch.");
    for (auto& w : ns.swarms)
        sample("patchswarm_patch_segments_held", w.held,
               "id=\"" + wire::short_hex(w.id) + "\",name=\"" + label(w.name) + "\"");
    metric("patchswarm_patch_segments", "gauge", "Segments in the patch, per patch.");
    for (auto& w : ns.swarms)
        sample("patchswarm_patch_segments", w.segments, "id=\"" + wire::short_hex(w.id) + "\",name=\"" + label(w.name) + "\"");
    return o;
}

}  // namespace ps::node
