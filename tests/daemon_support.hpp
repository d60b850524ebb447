// Helpers of the daemon tests: node daemons as separate processes, driven
// through their control sockets (test_daemon.cpp, test_daemon_network.cpp).
#pragma once

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "node/control.hpp"
#include "support.hpp"

namespace ps::test {

using json = nlohmann::json;

inline bool wait_for(const std::function<bool()>& cond, int ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return cond();
}

// "key=value" from a `ready ...` line.
inline std::string field(const std::string& text, const std::string& key) {
    auto p = text.find(" " + key + "=");
    if (p == std::string::npos) return "";
    auto v = text.substr(p + key.size() + 2);
    return v.substr(0, v.find_first_of(" \n"));
}

// A child process; one still running when its Proc goes away is killed
// (a failed REQUIRE must not leave daemons behind).
struct Proc {
    pid_t pid = -1;
    std::string out, err;
    Proc() = default;
    Proc(pid_t p, std::string o, std::string e) : pid(p), out(std::move(o)), err(std::move(e)) {}
    Proc(Proc&& o) noexcept : pid(std::exchange(o.pid, -1)), out(std::move(o.out)), err(std::move(o.err)) {}
    Proc& operator=(Proc&&) = delete;
    Proc(const Proc&) = delete;
    ~Proc() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

inline Proc spawn(const TempDir& d, const std::string& name, std::vector<std::string> args) {
    Proc p{-1, d / (name + ".out"), d / (name + ".err")};
    p.pid = spawn_cli(std::move(args), p.out, p.err);
    return p;
}

inline Run finish(Proc& p) {
    auto r = wait_cli(p.pid, p.out, p.err);
    p.pid = -1;
    return r;
}

// Waits for the `ready` line; returns it.
inline std::string ready(const Proc& p) {
    bool ok = wait_for([&] { return slurp(p.out).find("ready ") != std::string::npos; }, 10'000);
    INFO("stderr: " << slurp(p.err));
    REQUIRE(ok);
    return slurp(p.out);
}

// Kept for the tests written before Proc killed its own process: a list of
// the test's processes, touched by nobody at the end.
struct Reaper {
    std::vector<Proc*> procs;
};

inline json ctl(const std::string& socket, const std::string& cmd, const std::map<std::string, std::string>& args = {}) {
    auto c = node::control::Client::connect(socket, 60'000);  // add by name and rollout wait for the DHT
    if (!c) return json{{"ok", false}, {"error", c.error()}};
    auto line = c->call(node::control::make_request(cmd, args));
    if (!line) return json{{"ok", false}, {"error", line.error()}};
    return json::parse(*line);
}

inline json raw_line(const std::string& socket, const std::string& line) {
    auto c = node::control::Client::connect(socket, 5'000);
    REQUIRE(c);
    auto reply = c->call(line);
    REQUIRE(reply);
    return json::parse(*reply);
}

inline json patch_status(const std::string& socket) {
    auto s = ctl(socket, "status");
    if (!s.value("ok", false) || s["patches"].empty()) return json::object();
    return s["patches"][0];
}

// An operator key, a random patch of `size` bytes and its signed manifest.
struct Patch {
    std::string pub, manifest, file;
    std::uint64_t size = 0;
};
inline Patch make_patch(const TempDir& d, std::size_t size, std::uint64_t seed, const std::string& name = "p") {
    Patch p{d / "op.public", d / (name + ".manifest"), d / (name + ".bin"), size};
    if (!fs::exists(p.pub)) {
        auto k = run_cli(d, {"keygen", "--secret", d / "op.secret", "--public", p.pub});
        REQUIRE_MESSAGE(k.code == 0, k.err);
    }
    write_random_file(p.file, size, seed);
    auto r = run_cli(d, {"publish", "--key", d / "op.secret", "--file", p.file, "--name", name, "--version", "1",
                         "--out", p.manifest});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return p;
}

inline std::vector<std::string> device_args(const TempDir& d, const Patch& p, const std::string& data) {
    return {"node", "--data", d / data, "--domain", "d1", "--role", "peer", "--trust", p.pub, "--log-level", "info"};
}

inline Proc start_origin(const TempDir& d, const Patch& p, const std::string& bootstrap_dht, const std::string& file = "") {
    std::vector<std::string> args{"node", "--data", d / "origin", "--domain", "core", "--role", "origin",
                                  "--trust", p.pub, "--serve", p.manifest + "=" + (file.empty() ? p.file : file)};
    if (!bootstrap_dht.empty()) args.insert(args.end(), {"--bootstrap", "127.0.0.1:" + bootstrap_dht});
    return spawn(d, "origin", args);
}

inline std::string http_get(std::uint16_t port, const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
}

// The value of a Prometheus sample line "name{labels} value".
inline std::optional<std::uint64_t> sample(const std::string& text, const std::string& series) {
    auto p = text.find("\n" + series + " ");
    if (p == std::string::npos) return std::nullopt;
    return std::stoull(text.substr(p + series.size() + 2));
}

// Daemons of a test swarm, each a `patchswarm node` process with its own data
// folder under d; the first one started is everyone's DHT bootstrap. Every node
// is enrolled: the daemons' trust file requires it (the operator's key and
// "require-enrollment"), and each gets a certificate for its role and domain
// from `patchswarm enroll` before it starts.
struct Swarm {
    TempDir& d;
    std::string pub, trust;
    std::vector<std::unique_ptr<Proc>> procs;
    Reaper reaper;  // declared after procs: destroyed first, while they exist
    std::string dht;  // the origin's DHT port, everyone's bootstrap
    std::map<std::string, std::string> ready_lines;  // by node name

    explicit Swarm(TempDir& dir) : d(dir), pub(dir / "op.public"), trust(dir / "op.trust") {
        auto k = run_cli(d, {"keygen", "--secret", d / "op.secret", "--public", pub});
        REQUIRE_MESSAGE(k.code == 0, k.err);
        auto key = slurp(pub).substr(slurp(pub).find('\n') + 1);
        std::ofstream(trust) << "patchswarm-trust-v1\nkey " << key << "require-enrollment\n";
    }
    // Each node its own copy of the trust file: statements rewrite it.
    std::string trust_of(const std::string& name) {
        std::string t = d / (name + ".trust");
        if (!std::filesystem::exists(t)) std::filesystem::copy_file(trust, t);
        return t;
    }
    // `patchswarm enroll` for the node whose data folder is d/name; the certificate's path.
    std::string enroll(const std::string& name, const std::string& role, const std::string& domain) {
        std::string cert = d / (name + ".cert");
        auto r = run_cli(d, {"enroll", "--key", d / "op.secret", "--data", d / name, "--role", role, "--domain", domain,
                             "--out", cert});
        REQUIRE_MESSAGE(r.code == 0, r.err);
        return cert;
    }
    std::string sock(const std::string& name) const { return d / (name + "/run/control.sock"); }
    Proc& start(const std::string& name, const std::string& role, const std::string& domain,
                std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"node", "--data", d / name, "--domain", domain, "--role", role,
                                      "--trust", trust_of(name), "--certificate", enroll(name, role, domain),
                                      "--log-level", "info"};
        if (!dht.empty()) args.insert(args.end(), {"--bootstrap", "127.0.0.1:" + dht});
        args.insert(args.end(), extra.begin(), extra.end());
        procs.push_back(std::make_unique<Proc>(spawn(d, name, args)));
        reaper.procs.push_back(procs.back().get());
        auto line = ready(*procs.back());
        if (dht.empty()) dht = field(line, "dht");
        ready_lines[name] = line;
        return *procs.back();
    }
    // A random patch, signed; with announce, pushed through the origin's socket.
    // `extra` goes to `publish` as it is (e.g. --waves, --urgent).
    std::string publish(const std::string& name, std::size_t size, std::uint64_t seed, bool mandatory, bool announce = true,
                        int version = 1, const std::vector<std::string>& extra = {}) {
        std::string v = std::to_string(version);
        std::string file = d / (name + "-v" + v + ".bin"), manifest = d / (name + "-v" + v + ".manifest");
        write_random_file(file, size, seed);
        std::vector<std::string> args{"publish", "--key", d / "op.secret", "--file", file, "--name", name,
                                      "--version", v, "--out", manifest};
        if (mandatory) args.push_back("--mandatory");
        args.insert(args.end(), extra.begin(), extra.end());
        if (announce) args.insert(args.end(), {"--announce", "--data", d / "origin"});
        auto r = run_cli(d, args);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        if (announce) CHECK(r.out.find("announced " + name + " v" + v) != std::string::npos);
        return file;
    }
    // Every node's socket answers and each has at least `n` peers.
    void wait_connected(const std::vector<std::string>& names, int n) {
        for (auto& name : names) {
            bool ok = wait_for([&] { return ctl(sock(name), "status")["node"].value("peers", 0) >= n; }, 20'000);
            INFO(name << " never reached " << n << " peers");
            REQUIRE(ok);
        }
    }
};

// name -> state of a node's patches ("complete", "downloading", ...).
inline std::map<std::string, std::string> states(const std::string& socket) {
    std::map<std::string, std::string> m;
    auto l = ctl(socket, "list");
    for (auto& p : l["patches"]) m[p.value("name", "")] = p.value("state", "");
    return m;
}

inline bool complete(const std::string& socket, const std::string& name) { return states(socket)[name] == "complete"; }


}  // namespace ps::test
