// The daemon's life: settings, the installer hook, start, job files and
// resume, completion, reload and shutdown. Its control commands and metrics are
// in daemon_control.cpp; which patches it takes on by itself (auto-fetch,
// prefetch, the cache's room, publish) in daemon_fetch.cpp.
#include "node/daemon.hpp"

#include <nlohmann/json.hpp>

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "dht/addr.hpp"
#include "node/control.hpp"
#include "node/daemon_util.hpp"
#include "node/job_file.hpp"
#include "node/keys.hpp"
#include "node/log.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace daemon_util;

Result<crypto::SecretKey> node_key(const std::string& data_dir) {
    std::string sec = data_dir + "/node.secret", pub = data_dir + "/node.public";
    if (fs::exists(sec)) return load_secret_key(sec);
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    if (ec) return err("cannot create " + data_dir + ": " + ec.message());
    auto kp = crypto::generate_keypair();
    if (auto st = write_keypair(sec, pub, kp); !st) return std::move(st).take_error();
    return kp.sk;
}

namespace {

// The address to advertise when listening on every address: the first global
// address of an interface that is up (not loopback, link-local or 0/8); IPv4
// for 0.0.0.0, IPv6 first and then IPv4 for "::" (dual-stack). "" when none.
std::string detect_advertise_host(bool ipv6_first) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return "";
    std::string v4, v6;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
        char buf[INET6_ADDRSTRLEN] = {};
        if (i->ifa_addr->sa_family == AF_INET && v4.empty()) {
            auto a = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr;
            std::uint32_t h = ntohl(a.s_addr);
            bool local = (h >> 24) == 127 || (h >> 24) == 0 || (h >> 16) == 0xA9FE;  // 127/8, 0/8, 169.254/16
            if (!local && ::inet_ntop(AF_INET, &a, buf, sizeof buf)) v4 = buf;
        } else if (i->ifa_addr->sa_family == AF_INET6 && v6.empty()) {
            auto a = reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr;
            bool local = IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_LINKLOCAL(&a) || IN6_IS_ADDR_V4MAPPED(&a) ||
                         IN6_IS_ADDR_MULTICAST(&a) || IN6_IS_ADDR_UNSPECIFIED(&a);
            if (!local && ::inet_ntop(AF_INET6, &a, buf, sizeof buf)) v6 = buf;
        }
    }
    ::freeifaddrs(list);
    if (ipv6_first && !v6.empty()) return v6;
    return v4;
}

// The address the kernel would send from toward the first bootstrap entry
// that resolves (a UDP connect sends nothing): on a host with several
// interfaces, the one facing the network the node joins. "" when none
// resolves. IPv6 sources only when listening on "::".
std::string source_toward_bootstrap(const std::vector<std::string>& bootstrap, bool ipv6_ok) {
    for (auto& entry : bootstrap) {
        auto hp = dht::parse_host_port(entry);
        if (!hp) continue;
        for (auto& a : dht::resolve(*hp)) {
            int family = a.ss.ss_family;
            if (family != AF_INET && !(family == AF_INET6 && ipv6_ok)) continue;
            int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            sockaddr_storage self{};
            socklen_t len = sizeof self;
            bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) == 0 &&
                      ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len) == 0;
            ::close(fd);
            if (auto host = ok ? dht::host_string(reinterpret_cast<sockaddr*>(&self)) : ""; !host.empty()) return host;
        }
    }
    return "";
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
    s.opts.advertise_configured = !c.advertise.empty();
    if (s.opts.advertise_host.empty()) {
        bool any = ep->first == "0.0.0.0" || ep->first == "::";
        // Toward the bootstrap nodes first, else the first global address of
        // an interface; DHT nodes then tell whether others see us there
        // (node_reach.cpp).
        std::string found = any ? source_toward_bootstrap(c.bootstrap, ep->first == "::") : "";
        const char* via = "bootstrap";
        if (any && found.empty()) found = detect_advertise_host(ep->first == "::"), via = "interface";
        s.opts.advertise_host = found.empty() ? ep->first : found;
        if (!found.empty()) log::info("advertise_detected", {{"host", found}, {"listen", c.listen}, {"via", via}});
    }
    s.opts.portmap_upnp = c.portmap == "auto" || c.portmap == "upnp";
    s.opts.portmap_natpmp = c.portmap == "auto" || c.portmap == "natpmp";
    s.opts.max_peers = c.max_peers;
    s.opts.upload_rate = c.upload_limit;
    s.opts.uplink_capacity = c.uplink;
    s.opts.device_uplink = c.device_uplink;
    s.opts.download_rate = c.download_limit;
    s.opts.scrub_rate = c.scrub_rate;
    s.opts.uploads.slots = c.upload_slots ? c.upload_slots : default_upload_slots(*role);
    bool loopback = ep->first.rfind("127.", 0) == 0 || ep->first == "::1";
    s.opts.lan_discovery = c.lan_discovery == "on" || (c.lan_discovery == "auto" && c.bootstrap.empty() && !loopback);
    // "::" is dual-stack: the transfer socket takes IPv4 too (transfer::Stream::bind),
    // and so does the DHT, or IPv4 bootstrap nodes and peers could not reach it.
    s.opts.dht.bind4 = ep->first == "::" ? "0.0.0.0" : ep->first.find(':') == std::string::npos ? ep->first : "";
    s.opts.dht.bind6 = !c.dht_bind6.empty() ? c.dht_bind6 : (loopback ? "::1" : "::");
    s.opts.dht.port = c.dht_port;
    s.opts.dht.bootstrap = c.bootstrap;
    if (loopback) s.opts.dht.max_peer_req_per_sec = -1;  // every loopback peer shares one IP
    s.opts.trust = s.trust;  // gossip: announcements are believed only when they verify
    s.opts.freshness_window_s = static_cast<std::int64_t>(c.freshness_window_ms / 1000);
    s.identity.secret = *key;
    s.identity.key = key->public_key();
    s.identity.role = *role;
    s.identity.domain = c.domain;
    if (!c.certificate.empty()) {
        auto cert = load_cert_file(c.certificate);
        if (!cert) return c.problem("node.certificate", cert.error());
        s.identity.cert = std::move(*cert);
    }
    // Our own certificate under our own trust: a node that would be refused by
    // every peer says so at start, naming the problem.
    if (s.trust.require_enrollment())
        if (auto bad = check_cert(s.identity.cert, s.identity.key, s.identity.role, c.domain, s.trust,
                                  static_cast<std::int64_t>(std::time(nullptr))))
            return c.problem(c.certificate.empty() ? "node.trust" : "node.certificate",
                             "the trust store requires enrollment: " + bad->reason);
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
    dashboard_.reset();
    node_.reset();  // its callbacks point here
    control_.reset();
    metrics_.reset();
}

Status check_settings(const DaemonConfig& cfg) {
    if (auto st = validate_config(cfg); !st) return st;
    if (std::error_code ec; !fs::exists(cfg.trust, ec))
        return cfg.problem("node.trust", cfg.trust + " does not exist: put the operator's public key (or trust file) there");
    return {};
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
    // A statement changed trust (rotation, revocation, halt, widening):
    // manifests are verified under the new store at once, and the trust file
    // is rewritten atomically (a public key file becomes a trust file) so that
    // it survives a restart; halted patches go, widened waves take devices in.
    setup_.opts.on_trust_changed = [this](const TrustStore& t) {
        setup_.trust = t;
        auto st = write_file_atomic(cfg_.trust, as_bytes(t.to_text()), 0644);
        if (!st) log::error("trust_file_not_written", {{"path", cfg_.trust}, {"reason", st.error()}});
        else log::info("trust_file_updated", {{"path", cfg_.trust}});
        for (auto& w : node_->status().swarms)
            if (t.halted(w.name, w.version)) {
                log::warn("patch_halted", {{"name", w.name}, {"version", w.version}});
                (void)drop_patch(w.id);
            }
        drop_halted_waits();
        apply_widenings();
    };
    node_ = std::make_unique<Node>(loop_, setup_.opts, setup_.identity);
    if (auto st = node_->start(); !st) return st;
    apply_widenings();  // the ones kept in the trust file
    start_policy();
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
    if (auto st = start_dashboard(); !st) return st;
    if (auto why = advertise_warning(setup_.opts.advertise_host); !why.empty())
        log::warn("no_advertise_address", {{"reason", why}});
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
    if (dashboard_ && dashboard_->port()) s += " dashboard=" + cfg_.dashboard.substr(0, cfg_.dashboard.rfind(':')) + ":" + std::to_string(dashboard_->port());
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
    auto text = format_job_file(JobFile{j.out, state, j.hook});
    Status st = text ? write_file_atomic(job_dir(id) + "/job", as_bytes(*text), 0600) : Status(std::move(text).take_error());
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
        auto file = parse_job_file(std::string_view(reinterpret_cast<const char*>(job_bytes->data()), job_bytes->size()));
        if (!file) {
            fail(file.error());
            continue;
        }
        // (an empty out is a super-node's cached copy; other roles always export)
        if (file->out.empty() && setup_.identity.role != Role::Super) {
            fail("job file: no out path");
            continue;
        }
        Job job;
        job.out = file->out;
        job.hook = file->hook;
        const std::string& state = file->state;
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
        std::string line = outcome;  // one line of the job file
        std::replace_if(line.begin(), line.end(), [](char ch) { return ch == '\n' || ch == '\r' || ch == '\0'; }, ' ');
        j->second.hook = line.substr(0, kMaxJobValue);
        (void)save_job(hid);
    });
}

// ---- patches: selection, quota accounting, removal ----

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

Status Daemon::drop_patch(const Hash32& id) {
    fold_totals();
    auto st = node_->remove(id);
    if (auto l = last_.find(id); l != last_.end()) {
        retired_ += l->second;
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
    restart("node.certificate", c->certificate != cfg_.certificate);
    restart("node.freshness_window", c->freshness_window_ms != cfg_.freshness_window_ms);
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
    cfg_.policy = c->policy;
    cfg_.metered = c->metered;
    policy_applied_ = false;  // the limits above are the configured ones: apply the policy's again
    apply_policy();
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
    wave_wait_.clear();
    policy_timer_.reset();
    if (month_dirty_) save_month();
    control_.reset();  // no new requests; the socket path is removed
    metrics_.reset();
    dashboard_.reset();
    node_->shutdown([alive = std::weak_ptr<bool>(alive_), done = std::move(done)] {
        log::info("stopped", {});
        if (done) done();
    });
}

}  // namespace ps::node
