// The network commands: `node` (the long-running daemon: origin, super-node or
// device; node/daemon.hpp) and `fetch` (join, download, verify, seed for a
// while, exit; or, with --daemon, the same through a running node).
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>

#include "node/cli.hpp"
#include "node/config.hpp"
#include "node/daemon.hpp"
#include "node/keys.hpp"
#include "node/log.hpp"
#include "node/node.hpp"
#include "node/progress.hpp"
#include "node/trust.hpp"
#include "transfer/loop.hpp"
#include "transfer/sd_notify.hpp"

namespace ps::cli {

namespace {

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// Options both commands share. Each is also a config key; a value given on the
// command line overrides the config file (--config).
struct NetArgs {
    std::string config;
    std::string data_dir, listen, domain, role, trust, certificate, dht_bind6, portmap, lan_discovery, upload_limit, download_limit, uplink, device_uplink;
    std::uint16_t dht_port = 0;
    std::vector<std::string> bootstrap;
    std::uint32_t max_peers = 32;
    std::uint32_t upload_slots = 0;
    // Daemon-only settings.
    std::string quota, control, metrics, dashboard, dashboard_interval, log_level, on_complete, auto_fetch, start_delay,
        patches, prefetch, freshness_window;
    std::vector<std::string> serves;

    struct Bound {
        CLI::Option* opt;
        std::string key, flag;
        std::function<Status(node::DaemonConfig&)> apply;
    };
    std::vector<Bound> bound;

    template <typename T>
    void bind(CLI::App* sub, const std::string& flag, T& field, const std::string& key, const std::string& help,
              std::function<Status(node::DaemonConfig&)> apply) {
        bound.push_back({sub->add_option(flag, field, help), key, flag, std::move(apply)});
    }

    // Rates and sizes: "0", "1500", "64K", "10M", "1G".
    static std::function<Status(node::DaemonConfig&)> size_into(const std::string& flag, const std::string& text,
                                                                std::uint64_t node::DaemonConfig::*field,
                                                                const char* example) {
        return [flag, &text, field, example](node::DaemonConfig& c) -> Status {
            auto v = node::parse_size(text);
            if (!v) return err(flag + ": " + v.error() + " is not " + example);
            c.*field = *v;
            return {};
        };
    }

    // Durations: "0", "500ms", "30s", "5m".
    static std::function<Status(node::DaemonConfig&)> duration_into(const std::string& flag, const std::string& text,
                                                                    std::uint64_t node::DaemonConfig::*field) {
        return [flag, &text, field](node::DaemonConfig& c) -> Status {
            auto v = node::parse_duration_ms(text);
            if (!v) return err(flag + ": " + v.error() + " is not a duration such as 500ms, 30s or 5m");
            c.*field = *v;
            return {};
        };
    }

    void add_to(CLI::App* sub, bool daemon) {
        using C = node::DaemonConfig;
        const char* rate = "a rate such as 500K, 10M or 1G (bytes per second)";
        sub->add_option("--config", config, "TOML settings file (packaging/patchswarm.toml); options given here override it");
        bind(sub, "--data", data_dir, "node.data", "Data folder (node key, downloads)",
             [this](C& c) { c.data_dir = data_dir; return Status{}; });
        bind(sub, "--listen", listen, "node.listen", "Transfer address IP:PORT (port 0 = any)",
             [this](C& c) { c.listen = listen; return Status{}; });
        bind(sub, "--dht-port", dht_port, "dht.port", "UDP port of the DHT node (0 = any)",
             [this](C& c) { c.dht_port = dht_port; return Status{}; });
        bind(sub, "--bootstrap", bootstrap, "dht.bootstrap", "DHT bootstrap node IP:PORT (repeatable)",
             [this](C& c) { c.bootstrap = bootstrap; return Status{}; });
        bind(sub, "--domain", domain, "node.domain", "Network domain of this node ([a-z0-9-]{1,63})",
             [this](C& c) { c.domain = domain; return Status{}; });
        bind(sub, "--role", role, "node.role", "origin | super | peer",
             [this](C& c) { c.role = role; return Status{}; });
        bind(sub, "--trust", trust, "node.trust", "Operator public key or trust file",
             [this](C& c) { c.trust = trust; return Status{}; });
        bind(sub, "--certificate", certificate, "node.certificate", "Node certificate file (patchswarm enroll)",
             [this](C& c) { c.certificate = certificate; return Status{}; });
        bind(sub, "--dht-bind6", dht_bind6, "dht.bind6", "IPv6 address for the DHT socket",
             [this](C& c) { c.dht_bind6 = dht_bind6; return Status{}; });
        bind(sub, "--lan-discovery", lan_discovery, "dht.lan_discovery",
             "Find DHT nodes on the LAN by multicast: auto (when no --bootstrap) | on | off",
             [this](C& c) { c.lan_discovery = lan_discovery; return Status{}; });
        bind(sub, "--portmap", portmap, "node.portmap",
             "Port mapping on the router when unreachable: auto | upnp | natpmp | off",
             [this](C& c) { c.portmap = portmap; return Status{}; });
        bind(sub, "--max-peers", max_peers, "node.max_peers", "Most connections at once",
             [this](C& c) { c.max_peers = max_peers; return Status{}; });
        bind(sub, "--upload-slots", upload_slots, "limits.upload_slots",
             "Peers served at once (default: peer 4, super 64, origin 16)",
             [this](C& c) { c.upload_slots = upload_slots; return Status{}; });
        bind(sub, "--upload-limit", upload_limit, "limits.upload",
             "Upload rate limit in bytes/s, K/M/G suffixes (0 = none)",
             size_into("--upload-limit", upload_limit, &C::upload_limit, rate));
        bind(sub, "--download-limit", download_limit, "limits.download",
             "Download rate limit in bytes/s, K/M/G suffixes (0 = none)",
             size_into("--download-limit", download_limit, &C::download_limit, rate));
        bind(sub, "--uplink", uplink, "limits.uplink",
             "This host's uplink capacity in bytes/s, K/M/G suffixes (0 = unknown; super-nodes)",
             size_into("--uplink", uplink, &C::uplink, rate));
        bind(sub, "--device-uplink", device_uplink, "limits.device_uplink",
             "A device's uplink in this domain, bytes/s (0 = unknown; super-nodes)",
             size_into("--device-uplink", device_uplink, &C::device_uplink, rate));
        if (daemon) add_daemon_options(sub);
    }

    // What only the daemon takes (not the one-shot fetch).
    void add_daemon_options(CLI::App* sub) {
        using C = node::DaemonConfig;
        bind(sub, "--serve", serves, "serve", "MANIFEST=PATCH to serve (repeatable)", [this](C& c) -> Status {
            c.serve.clear();
            for (auto& spec : serves) {
                auto eq = spec.find('=');
                if (eq == std::string::npos) return err("--serve: '" + spec + "' is not MANIFEST=PATCH");
                c.serve.push_back({spec.substr(0, eq), spec.substr(eq + 1)});
            }
            return Status{};
        });
        bind(sub, "--quota", quota, "limits.quota", "Most bytes the downloads in the data folder may take (0 = none)",
             size_into("--quota", quota, &C::quota, "a size such as 500M or 20G (bytes)"));
        bind(sub, "--control", control, "control.socket",
             "Control socket path (default DATA/run/control.sock; 'none' = no socket)",
             [this](C& c) { c.control_socket = control; return Status{}; });
        bind(sub, "--metrics", metrics, "control.metrics", "Serve Prometheus metrics at http://IP:PORT/metrics (off by default)",
             [this](C& c) { c.metrics = metrics; return Status{}; });
        bind(sub, "--dashboard", dashboard, "dashboard.listen",
             "Serve the live rollout dashboard at http://IP:PORT/ (origin and super-nodes; off by default)",
             [this](C& c) { c.dashboard = dashboard; return Status{}; });
        bind(sub, "--dashboard-interval", dashboard_interval, "dashboard.interval",
             "Time between two dashboard samples, e.g. 1s (default 3s)", [this](C& c) -> Status {
                 auto v = node::parse_duration_ms(dashboard_interval);
                 if (!v) return err("--dashboard-interval: " + v.error());
                 c.dashboard_interval_ms = *v;
                 return {};
             });
        bind(sub, "--log-level", log_level, "log.level", "trace | debug | info | warn | error | off (default warn)",
             [this](C& c) { c.log_level = log_level; return Status{}; });
        bind(sub, "--on-complete", on_complete, "device.on_complete",
             "Program run with the verified file's path when a download completes (arguments: use the config file)",
             [this](C& c) { c.on_complete = {on_complete}; return Status{}; });
        auto on_off = [](const std::string& flag, const std::string& text, bool C::*field) {
            return [flag, &text, field](C& c) -> Status {
                if (text != "on" && text != "off") return err(flag + ": must be on or off, not '" + text.substr(0, 32) + "'");
                c.*field = text == "on";
                return {};
            };
        };
        bind(sub, "--auto-fetch", auto_fetch, "device.auto_fetch",
             "on | off: fetch mandatory patches as soon as they are announced (default on)",
             on_off("--auto-fetch", auto_fetch, &C::auto_fetch));
        bind(sub, "--start-delay", start_delay, "device.start_delay",
             "Each automatic fetch waits a random time up to this (e.g. 0, 500ms, 30s, 5m; default 30s)",
             duration_into("--start-delay", start_delay, &C::start_delay_ms));
        bind(sub, "--freshness-window", freshness_window, "node.freshness_window",
             "Say stale when no freshness statement from the enrolled origin is this recent (e.g. 5m; default 0 = off)",
             duration_into("--freshness-window", freshness_window, &C::freshness_window_ms));
        bind(sub, "--patches", patches, "device.patches", "Folder for automatically fetched patches (default DATA/patches)",
             [this](C& c) { c.patches_dir = patches; return Status{}; });
        bind(sub, "--prefetch", prefetch, "cache.prefetch",
             "on | off: a super-node fetches every announced patch at once (default on)",
             on_off("--prefetch", prefetch, &C::prefetch));
    }

    // The config file (if any), then every option given on the command line.
    Result<node::DaemonConfig> build() const {
        node::DaemonConfig c;
        if (!config.empty()) {
            auto loaded = node::load_config(config);
            if (!loaded) return std::move(loaded).take_error();
            c = std::move(*loaded);
        } else {
            for (auto& b : bound) c.cli[b.key] = b.flag;  // every key is named as its option
        }
        for (auto& b : bound) {
            if (b.opt->count() == 0) continue;
            if (auto st = b.apply(c); !st) return std::move(st).take_error();
            c.cli[b.key] = b.flag;
        }
        return c;
    }
};

nlohmann::json stats_json(const node::SwarmStats& st, const node::VerifiedManifest& vm, const transfer::Identity& id) {
    using core::SourceClass;
    auto from = [&](SourceClass c) { return st.bytes_from[static_cast<int>(c)]; };
    nlohmann::json j;
    j["manifest_id"] = to_hex(vm.id);
    j["name"] = vm.manifest.name;
    j["version"] = vm.manifest.version;
    j["total_size"] = vm.manifest.total_size;
    j["domain"] = id.domain;
    j["role"] = std::string(to_string(id.role));
    j["bytes_from_origin"] = from(SourceClass::Origin);
    j["bytes_from_same_domain"] = from(SourceClass::SameDomainPeer) + from(SourceClass::SameDomainSuper);
    j["bytes_from_same_domain_peers"] = from(SourceClass::SameDomainPeer);
    j["bytes_from_same_domain_super"] = from(SourceClass::SameDomainSuper);
    j["bytes_from_other_domains"] = from(SourceClass::OtherDomain);
    // "Busy" answers received, by the rung that gave them.
    j["busy_answers"] = {{"same_domain_peers", st.busy_from[int(SourceClass::SameDomainPeer)]},
                         {"same_domain_super", st.busy_from[int(SourceClass::SameDomainSuper)]},
                         {"other_domains", st.busy_from[int(SourceClass::OtherDomain)]},
                         {"origin", st.busy_from[int(SourceClass::Origin)]}};
    j["bytes_downloaded"] = st.bytes_downloaded;
    j["bytes_uploaded"] = st.bytes_uploaded;
    j["segments_verified"] = st.segments_verified;
    j["segments_rejected"] = st.segments_rejected;
    j["banned_peers"] = st.banned.size();
    if (st.completed_ms) j["seconds_to_complete"] = double(*st.completed_ms - st.started_ms) / 1000.0;
    else j["seconds_to_complete"] = nullptr;
    return j;
}

Status write_json(const std::string& path, const nlohmann::json& j) {
    std::string text = j.dump(2) + "\n";
    return node::write_file_atomic(path, as_bytes(text));
}

// Runs the loop until `stop` is called; SIGINT/SIGTERM call it too.
struct Runtime {
    transfer::Loop loop;
    std::unique_ptr<node::Node> node;
    std::unique_ptr<transfer::SignalWatch> sigint, sigterm;
    std::function<void()> on_stopped;

    void stop() {
        if (!node) return;
        node->shutdown([this] {
            if (on_stopped) on_stopped();
            loop.stop();
        });
    }
    void watch_signals() {
        sigint = std::make_unique<transfer::SignalWatch>(loop, SIGINT, [this] { stop(); });
        sigterm = std::make_unique<transfer::SignalWatch>(loop, SIGTERM, [this] { stop(); });
    }
};

// systemd's side of the daemon (Type=notify, transfer/sd_notify.hpp): READY
// once it serves, WATCHDOG at half WatchdogSec= from the loop (a stuck loop
// stops the pings), and a STATUS line refreshed with them (every 10 s without
// a watchdog).
void notify_systemd(const transfer::Notifier& n, transfer::Timer& timer, const node::Daemon& d) {
    if (!n.enabled()) return;
    auto say = [&n](const std::string& state) {
        if (auto st = n.send(state); !st) ps::log::warn("sd_notify_failed", {{"reason", st.error()}});
    };
    say("READY=1\nSTATUS=" + d.summary());
    const std::uint64_t period = n.watchdog_ms() ? std::max<std::uint64_t>(n.watchdog_ms() / 2, 1) : 10'000;
    timer.start(period, period, [say, &d, wd = n.watchdog_ms() != 0] {
        say((wd ? "WATCHDOG=1\nSTATUS=" : "STATUS=") + d.summary());
    });
}

int run_node(const NetArgs& a) {
    const std::string cmd = "node";
    auto source = [&a]() { return a.build(); };
    auto cfg = source();
    if (!cfg) return fail(cmd, cfg.error(), kExitUsage);
    // A wrong setting, or no operator key yet on a fresh install: status 2,
    // so systemd does not restart the node every few seconds.
    if (auto st = node::check_settings(*cfg); !st) return fail(cmd, st.error(), kExitUsage);
    transfer::Loop loop;
    auto daemon = node::Daemon::start(loop, std::move(*cfg), source);
    if (!daemon) return fail(cmd, daemon.error());
    std::printf("%s\n", (*daemon)->ready_line().c_str());
    std::fflush(stdout);
    const auto systemd = transfer::Notifier::from_env();
    transfer::Timer pings(loop);
    notify_systemd(systemd, pings, **daemon);
    bool stopping = false;
    // Shutting down ends in a callback posted from the DHT's threads; the guard
    // keeps the loop running until it arrives (or gives up after 10 s).
    transfer::Timer guard(loop);
    auto stop = [&] {
        if (stopping) return;
        stopping = true;
        pings.stop();
        (void)systemd.send("STOPPING=1\nSTATUS=stopping");
        guard.start(10'000, 0, [&loop] {
            ps::log::warn("shutdown_timeout", {});
            loop.stop();
        });
        (*daemon)->shutdown([&loop] { loop.stop(); });
    };
    transfer::SignalWatch sigterm(loop, SIGTERM, stop), sigint(loop, SIGINT, stop);
    transfer::SignalWatch sighup(loop, SIGHUP, [&] {
        (void)systemd.reloading();
        auto st = (*daemon)->reload();
        (void)systemd.send("READY=1\nSTATUS=" + (st ? (*daemon)->summary() : "reload failed: " + st.error()));
    });
    loop.run();
    daemon->reset();
    return 0;
}

struct FetchArgs {
    std::string manifest, name, out, stats_json, daemon;
    double seed_ratio = 1.0;
    double seed_seconds = 300;
    double timeout = 0;
};

// By name: asks the DHT (and listens to gossip) until a verified manifest of
// that name turns up or `wait` seconds pass. A fresh node needs a few seconds
// to join. When none does, the node is stopped and gone.
Result<node::VerifiedManifest> find_by_name(Runtime& rt, const std::string& name, double wait) {
    std::optional<node::VerifiedManifest> vm;
    auto t0 = rt.loop.now_ms();
    transfer::Timer ask(rt.loop);
    bool asking = false;
    auto try_once = [&] {
        if (asking || vm) return;
        asking = true;
        rt.node->find_manifest(name, [&](std::optional<node::VerifiedManifest> found) {
            asking = false;
            if (found) {
                vm = std::move(found);
                rt.loop.stop();
            } else if (double(rt.loop.now_ms() - t0) / 1000.0 >= wait) {
                rt.loop.stop();
            }
        });
    };
    ask.start(0, 1000, try_once);
    rt.loop.run();
    ask.stop();
    if (!vm) {
        rt.stop();
        rt.loop.run();
        rt.node.reset();
        return err("no manifest named '" + name + "' was found in " + std::to_string(int(wait)) +
                   " s (not in the DHT, not announced by a peer)");
    }
    std::printf("found %s v%llu (%s)\n", vm->manifest.name.c_str(),
                static_cast<unsigned long long>(vm->manifest.version), wire::short_hex(vm->id).c_str());
    return std::move(*vm);
}

// The verified --manifest, or nothing for a valid --name; on an error, says
// why and sets `code` to the exit status.
std::optional<node::VerifiedManifest> given_manifest(const FetchArgs& f, const node::TrustStore& trust, int& code) {
    code = 0;
    if (!f.manifest.empty()) {
        auto loaded = node::load_verified_manifest(f.manifest, trust, unix_now());
        if (loaded) return std::move(*loaded);
        code = fail("fetch", f.manifest + ": " + loaded.error());
    } else if (!wire::valid_patch_name(f.name)) {
        code = fail("fetch", "--name: '" + f.name + "' is not a patch name ([a-z0-9._-], at most 64)", kExitUsage);
    }
    return std::nullopt;
}

// The download's bytes held so far, to the progress bar or lines on stdout.
void show_progress(node::ProgressPrinter& out, const node::Node& n, const Hash32& id, std::uint64_t now_ms) {
    for (auto& w : n.status().swarms) {
        if (w.id != id) continue;
        out.update(now_ms, w.held_bytes, w.total_size, w.held == w.segments ? "complete" : "downloading");
    }
}

int run_fetch(const NetArgs& a, const FetchArgs& f) {
    const std::string cmd = "fetch";
    if (f.manifest.empty() == f.name.empty()) return fail(cmd, "give either --manifest or --name", kExitUsage);
    if (!f.daemon.empty()) return fetch_via_daemon(f.daemon, f.manifest, f.name, f.out, f.timeout);
    if (f.out.empty()) return fail(cmd, "--out is required (without --daemon)", kExitUsage);
    auto cfg = a.build();
    if (!cfg) return fail(cmd, cfg.error(), kExitUsage);
    if (auto st = node::validate_config(*cfg, /*need_role=*/false); !st) return fail(cmd, st.error(), kExitUsage);
    auto setup = node::make_setup(*cfg);
    if (!setup) return fail(cmd, setup.error());
    int code = 0;
    auto vm = given_manifest(f, setup->trust, code);
    if (code) return code;

    Runtime rt;
    rt.node = std::make_unique<node::Node>(rt.loop, setup->opts, setup->identity);
    if (auto st = rt.node->start(); !st) return fail(cmd, st.error());
    if (!vm) {
        auto found = find_by_name(rt, f.name, f.timeout > 0 ? f.timeout : 60);
        if (!found) return fail(cmd, found.error(), kExitTimeout);
        vm = std::move(*found);
    }

    int exit_code = 0;
    std::string failure;
    std::optional<std::uint64_t> done_at;
    core::SeedPolicy seed{.ratio = f.seed_ratio, .max_seconds = f.seed_seconds};
    auto write_stats = [&] {
        if (f.stats_json.empty()) return;
        if (auto* st = rt.node->stats(vm->id)) (void)write_json(f.stats_json, stats_json(*st, *vm, setup->identity));
    };
    rt.on_stopped = write_stats;

    auto started = rt.loop.now_ms();
    node::ProgressPrinter progress(stdout, ::isatty(1) == 1);
    auto st = rt.node->fetch(*vm, f.out, [&](Status s) {
        if (!s) {
            exit_code = kExitFailure;
            failure = s.error();
            return rt.stop();
        }
        done_at = rt.loop.now_ms();
        show_progress(progress, *rt.node, vm->id, *done_at - started);
        progress.finish();  // the bar's line ends before "complete"
        std::printf("complete %s in %.2f s\n", f.out.c_str(), double(*done_at - started) / 1000.0);
        std::fflush(stdout);
        write_stats();
    });
    if (!st) return fail(cmd, st.error());

    transfer::Timer check(rt.loop);
    check.start(250, 250, [&] {
        auto now = rt.loop.now_ms();
        const node::SwarmStats* s = rt.node ? rt.node->stats(vm->id) : nullptr;
        if (!s) return;
        if (!done_at) {
            show_progress(progress, *rt.node, vm->id, now - started);
            if (f.timeout > 0 && double(now - started) / 1000.0 >= f.timeout) {
                exit_code = kExitTimeout;
                failure = "timed out after " + std::to_string(int(f.timeout)) + " s with " +
                          std::to_string(s->segments_verified) + " new segments";
                check.stop();
                rt.stop();
            }
            return;
        }
        if (!seed.keep_seeding(s->bytes_uploaded, s->bytes_downloaded, double(now - *done_at) / 1000.0)) {
            check.stop();
            rt.stop();
        }
    });
    rt.watch_signals();
    rt.loop.run();
    progress.finish();
    rt.node.reset();
    if (exit_code) return fail(cmd, failure, exit_code);
    if (!done_at) return fail(cmd, "stopped before the download completed", kExitIncomplete);
    return 0;
}

}  // namespace

void add_network_commands(CLI::App& app, Commands& out) {
    {
        auto* sub = app.add_subcommand("node", "Run a node (daemon): serve what it holds, download what it is told, "
                                               "answer on its control socket");
        auto a = std::make_shared<NetArgs>();
        a->add_to(sub, true);
        out.emplace_back(sub, [a] { return run_node(*a); });
    }
    {
        auto* sub = app.add_subcommand("fetch", "Download a patch from the swarm, verify it, seed it for a while "
                                                "(or, with --daemon, through a running node)");
        auto a = std::make_shared<NetArgs>();
        auto f = std::make_shared<FetchArgs>();
        a->add_to(sub, false);
        sub->add_option("--manifest", f->manifest, "Signed manifest of the patch");
        sub->add_option("--name", f->name,
                        "...or the patch name: the newest verified manifest announced under it (DHT or gossip)");
        sub->add_option("--out", f->out,
                        "Where to write the verified patch (with --daemon and --name: default DATA/patches/NAME-vVERSION)");
        sub->add_option("--daemon", f->daemon,
                        "Control socket of a running node: it downloads the patch (and keeps it across restarts); "
                        "this command shows progress until it is complete");
        sub->add_option("--seed-ratio", f->seed_ratio,
                        "After completing, keep serving until uploaded >= R x downloaded (0 = leave at once)");
        sub->add_option("--seed-seconds", f->seed_seconds, "...or until this many seconds passed");
        sub->add_option("--timeout", f->timeout, "Give up when not complete after this many seconds (0 = never)");
        sub->add_option("--stats-json", f->stats_json, "Write transfer statistics as JSON to this file");
        out.emplace_back(sub, [a, f] { return run_fetch(*a, *f); });
    }
}

}  // namespace ps::cli
