// The network commands: `node` (a long-running holder: origin, super-node or
// device) and `fetch` (join, download, verify, seed for a while, exit).
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>

#include "node/cli.hpp"
#include "node/keys.hpp"
#include "node/node.hpp"
#include "node/trust.hpp"
#include "transfer/loop.hpp"

namespace ps::cli {

namespace {

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// Options both commands share.
struct NetArgs {
    std::string data_dir;
    std::string listen = "127.0.0.1:0";
    std::uint16_t dht_port = 0;
    std::vector<std::string> bootstrap;
    std::string domain;
    std::string role = "peer";
    std::string trust;
    std::string dht_bind6;  // default: ::1 for a loopback listen address, else ::
    std::uint32_t max_peers = 32;
    std::uint32_t upload_slots = 0;  // 0 = the role's default
    std::string upload_limit = "0", download_limit = "0";

    void add_to(CLI::App* sub, bool role_required) {
        sub->add_option("--data", data_dir, "Data folder (node key, downloads)")->required();
        sub->add_option("--listen", listen, "Transfer address IP:PORT (port 0 = any)");
        sub->add_option("--dht-port", dht_port, "UDP port of the DHT node (0 = any)");
        sub->add_option("--bootstrap", bootstrap, "DHT bootstrap node IP:PORT (repeatable)");
        sub->add_option("--domain", domain, "Network domain of this node ([a-z0-9-]{1,63})")->required();
        auto* r = sub->add_option("--role", role, "origin | super | peer");
        if (role_required) r->required();
        sub->add_option("--trust", trust, "Operator public key or trust file")->required();
        sub->add_option("--dht-bind6", dht_bind6, "IPv6 address for the DHT socket");
        sub->add_option("--max-peers", max_peers, "Most connections at once");
        sub->add_option("--upload-slots", upload_slots, "Peers served at once (default: peer 4, super 64, origin 16)");
        sub->add_option("--upload-limit", upload_limit, "Upload rate limit in bytes/s, K/M/G suffixes (0 = none)");
        sub->add_option("--download-limit", download_limit, "Download rate limit in bytes/s, K/M/G suffixes (0 = none)");
    }
};

// Everything a running node needs, built from NetArgs.
struct Setup {
    node::NodeOptions opts;
    transfer::Identity identity;
    node::TrustStore trust;
};

Result<crypto::SecretKey> node_key(const std::string& data_dir) {
    std::string sec = data_dir + "/node.secret", pub = data_dir + "/node.public";
    if (std::filesystem::exists(sec)) return node::load_secret_key(sec);
    auto kp = crypto::generate_keypair();
    if (auto st = node::write_keypair(sec, pub, kp); !st) return std::move(st).take_error();
    return kp.sk;
}

// "0", "1500", "64K", "10M", "1G" (powers of 1024) -> bytes per second.
Result<std::uint64_t> parse_rate(const std::string& opt, const std::string& v) {
    std::size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) ++digits;
    std::string rest = v.substr(digits);
    std::uint64_t mult = rest.empty() ? 1 : rest == "K" ? 1ull << 10 : rest == "M" ? 1ull << 20 : rest == "G" ? 1ull << 30 : 0;
    if (digits == 0 || digits > 12 || mult == 0)
        return err(opt + " '" + v + "' is not a rate such as 500K, 10M or 1G (bytes per second)");
    return std::stoull(v.substr(0, digits)) * mult;
}

Result<Setup> make_setup(const NetArgs& a) {
    auto role = role_from_string(a.role);
    if (!role) return err("--role must be origin, super or peer, not '" + a.role + "'");
    if (!valid_domain(a.domain)) return err("--domain '" + a.domain + "' is not 1-63 characters of a-z, 0-9, -");
    auto ep = transfer::parse_endpoint(a.listen);
    if (!ep) return err("--listen: " + ep.error());
    auto trust = node::TrustStore::load(a.trust);
    if (!trust) return err("--trust: " + trust.error());
    std::error_code ec;
    std::filesystem::create_directories(a.data_dir, ec);
    if (ec) return err("--data: cannot create " + a.data_dir + ": " + ec.message());
    auto key = node_key(a.data_dir);
    if (!key) return err("node key: " + key.error());

    Setup s{.opts = {}, .identity = {}, .trust = std::move(*trust)};
    s.opts.data_dir = a.data_dir;
    s.opts.listen_host = ep->first;
    s.opts.listen_port = ep->second;
    s.opts.max_peers = a.max_peers;
    auto up = parse_rate("--upload-limit", a.upload_limit);
    if (!up) return std::move(up).take_error();
    auto down = parse_rate("--download-limit", a.download_limit);
    if (!down) return std::move(down).take_error();
    s.opts.upload_rate = *up;
    s.opts.download_rate = *down;
    s.opts.uploads.slots = a.upload_slots ? a.upload_slots : *role == Role::Super ? 64 : *role == Role::Origin ? 16 : 4;
    bool loopback = ep->first.rfind("127.", 0) == 0 || ep->first == "::1";
    s.opts.dht.bind4 = ep->first.find(':') == std::string::npos ? ep->first : "";
    s.opts.dht.bind6 = !a.dht_bind6.empty() ? a.dht_bind6 : (loopback ? "::1" : "::");
    s.opts.dht.port = a.dht_port;
    s.opts.dht.bootstrap = a.bootstrap;
    if (loopback) s.opts.dht.max_peer_req_per_sec = -1;  // every loopback peer shares one IP
    s.opts.trust = s.trust;  // gossip: announcements are believed only when they verify
    s.identity.secret = *key;
    s.identity.key = key->public_key();
    s.identity.role = *role;
    s.identity.domain = a.domain;
    return s;
}

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

int run_node(const NetArgs& a, const std::vector<std::string>& serves) {
    const std::string cmd = "node";
    auto setup = make_setup(a);
    if (!setup) return fail(cmd, setup.error());
    Runtime rt;
    rt.node = std::make_unique<node::Node>(rt.loop, setup->opts, setup->identity);
    if (auto st = rt.node->start(); !st) return fail(cmd, st.error());
    for (auto& spec : serves) {
        auto eq = spec.find('=');
        if (eq == std::string::npos) return fail(cmd, "--serve '" + spec + "' is not MANIFEST=PATCH");
        auto vm = node::load_verified_manifest(spec.substr(0, eq), setup->trust, unix_now());
        if (!vm) return fail(cmd, spec.substr(0, eq) + ": " + vm.error());
        if (auto st = rt.node->serve(*vm, spec.substr(eq + 1)); !st) return fail(cmd, st.error());
        std::printf("serving %s v%llu (%s) from %s\n", vm->manifest.name.c_str(),
                    static_cast<unsigned long long>(vm->manifest.version), to_hex(vm->id).c_str(),
                    spec.substr(eq + 1).c_str());
    }
    std::printf("ready role=%s domain=%s listen=%s:%u dht=%u key=%s\n", std::string(to_string(setup->identity.role)).c_str(),
                a.domain.c_str(), setup->opts.listen_host.c_str(), rt.node->listen_port(), rt.node->dht_port(),
                to_hex(setup->identity.key).c_str());
    std::fflush(stdout);
    rt.watch_signals();
    rt.loop.run();
    rt.node.reset();
    return 0;
}

struct FetchArgs {
    std::string manifest, out, stats_json;
    double seed_ratio = 1.0;
    double seed_seconds = 300;
    double timeout = 0;
};

int run_fetch(const NetArgs& a, const FetchArgs& f) {
    const std::string cmd = "fetch";
    auto setup = make_setup(a);
    if (!setup) return fail(cmd, setup.error());
    auto vm = node::load_verified_manifest(f.manifest, setup->trust, unix_now());
    if (!vm) return fail(cmd, f.manifest + ": " + vm.error());

    Runtime rt;
    rt.node = std::make_unique<node::Node>(rt.loop, setup->opts, setup->identity);
    if (auto st = rt.node->start(); !st) return fail(cmd, st.error());

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
    auto st = rt.node->fetch(*vm, f.out, [&](Status s) {
        if (!s) {
            exit_code = 1;
            failure = s.error();
            return rt.stop();
        }
        done_at = rt.loop.now_ms();
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
            if (f.timeout > 0 && double(now - started) / 1000.0 >= f.timeout) {
                exit_code = 3;
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
    rt.node.reset();
    if (exit_code) return fail(cmd, failure, exit_code);
    if (!done_at) return fail(cmd, "stopped before the download completed", 4);
    return 0;
}

}  // namespace

void add_network_commands(CLI::App& app, Commands& out) {
    {
        auto* sub = app.add_subcommand("node", "Run a node: serve what it holds, announce it in the DHT");
        auto a = std::make_shared<NetArgs>();
        auto serves = std::make_shared<std::vector<std::string>>();
        a->add_to(sub, true);
        sub->add_option("--serve", *serves, "MANIFEST=PATCH to serve (repeatable)");
        out.emplace_back(sub, [a, serves] { return run_node(*a, *serves); });
    }
    {
        auto* sub = app.add_subcommand("fetch", "Download a patch from the swarm, verify it, seed it for a while");
        auto a = std::make_shared<NetArgs>();
        auto f = std::make_shared<FetchArgs>();
        a->add_to(sub, false);
        sub->add_option("--manifest", f->manifest, "Signed manifest of the patch")->required();
        sub->add_option("--out", f->out, "Where to write the verified patch")->required();
        sub->add_option("--seed-ratio", f->seed_ratio,
                        "After completing, keep serving until uploaded >= R x downloaded (0 = leave at once)");
        sub->add_option("--seed-seconds", f->seed_seconds, "...or until this many seconds passed");
        sub->add_option("--timeout", f->timeout, "Give up when not complete after this many seconds (0 = never)");
        sub->add_option("--stats-json", f->stats_json, "Write transfer statistics as JSON to this file");
        out.emplace_back(sub, [a, f] { return run_fetch(*a, *f); });
    }
}

}  // namespace ps::cli
