// Cold start (issue 12, item 6): a node whose bootstrap node is not up yet
// keeps pinging it with back-off and says so in `status` and its log, joins
// once it comes up, and completes its download; and a swarm whose origin,
// bootstrap node and devices all start at the same instant completes, run
// after run. Separate processes, real OpenDHT nodes, loopback only.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "core/backoff.hpp"
#include "daemon_support.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

// A UDP port that was free a moment ago (for a bootstrap node started later).
std::string free_udp_port() {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return std::to_string(ntohs(a.sin_port));
}

std::string sock_of(const TempDir& d, const std::string& name) { return d / (name + "/run/control.sock"); }

json dht_join(const std::string& socket) { return ctl(socket, "status")["node"]["dht_join"]; }

}  // namespace

TEST_CASE("backoff: doubles from the first step to the cap, within the jitter, and starts again after reset") {
    Rng rng(7);
    core::Backoff b(1'000, 60'000);
    std::uint64_t step = 1'000;
    for (int i = 0; i < 10; ++i) {
        auto d = b.next(rng);
        CHECK(d >= step * 3 / 4);
        CHECK(d <= step * 5 / 4);
        step = std::min<std::uint64_t>(step * 2, 60'000);
    }
    CHECK(b.attempts() == 10);
    b.reset();
    CHECK(b.attempts() == 0);
    CHECK(b.next(rng) <= 1'250);
    // Nodes started together draw different delays.
    std::set<std::uint64_t> drawn;
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        Rng r(seed);
        core::Backoff fresh(1'000, 60'000);
        fresh.next(r);
        drawn.insert(fresh.next(r));
    }
    CHECK(drawn.size() > 4);
}

TEST_CASE("cold start: a node whose bootstrap node is not up yet retries with back-off, shows it in status "
          "and the log, joins when it comes up and completes its download") {
    TempDir d("ps-cold-late");
    auto p = make_patch(d, 3 * 1024 * 1024 + 17, 41);
    const std::string port = free_udp_port();
    const std::string boot = "127.0.0.1:" + port;
    auto dev = spawn(d, "dev", {"node", "--data", d / "dev", "--domain", "d1", "--role", "peer", "--trust", p.pub,
                                "--bootstrap", boot, "--log-level", "info"});
    ready(dev);
    const std::string dsock = sock_of(d, "dev");
    auto add = ctl(dsock, "add", {{"manifest", p.manifest}, {"out", d / "dev.bin"}});
    REQUIRE_MESSAGE(add.value("ok", false), add.dump());

    // Nobody answers: attempts go on, each logged. (A ping takes OpenDHT about
    // 8 s to give up on, then the back-off: 1 s, 2 s, 4 s ... 60 s.)
    json j;
    REQUIRE(wait_for([&] { j = dht_join(dsock); return j.value("attempts", 0) >= 2 && !j["next_retry_in_s"].is_null(); },
                     30'000));
    INFO(j.dump());
    CHECK(j.value("state", "") == "connecting");
    CHECK(j["unanswered"] == json::array({boot}));
    CHECK(j["bootstrap"] == json::array({boot}));
    CHECK(j.value("since_seconds", 0.0) > 1.0);
    auto log = slurp(dev.err);
    CHECK(log.find("event=bootstrap_unanswered") != std::string::npos);
    CHECK(log.find("no answer from " + boot + ", retrying in ") != std::string::npos);
    CHECK(log.find("attempt=2") != std::string::npos);
    // The download says it has no holder and when it looks again.
    auto st = patch_status(dsock);
    CHECK(st.value("state", "") == "downloading");
    CHECK(st.value("holders", -1) == 0);
    CHECK(st["next_lookup_in_s"].is_number());
    auto text = run_cli(d, {"status", "--socket", dsock});
    CHECK_MESSAGE(text.out.find("dht connecting for ") != std::string::npos, text.out);
    CHECK(text.out.find("no answer from " + boot) != std::string::npos);
    CHECK(text.out.find("no holders found yet, next lookup in ") != std::string::npos);

    // The bootstrap node (here the origin) comes up on that port.
    auto origin = spawn(d, "origin", {"node", "--data", d / "origin", "--domain", "core", "--role", "origin", "--trust",
                                      p.pub, "--serve", p.manifest + "=" + p.file, "--dht-port", port});
    ready(origin);
    bool done = wait_for([&] { return patch_status(dsock).value("state", "") == "complete"; }, 75'000);
    INFO(slurp(dev.err));
    REQUIRE(done);
    CHECK(slurp(d / "dev.bin") == slurp(p.file));
    j = dht_join(dsock);
    CHECK(j.value("state", "") == "connected");
    CHECK(slurp(dev.err).find("event=dht_connected") != std::string::npos);
    // The origin had no bootstrap node: it waited for nodes to join it, and one did.
    CHECK(dht_join(sock_of(d, "origin")).value("state", "") == "connected");
}

TEST_CASE("cold start: origin, bootstrap node and devices started at the same instant complete, run after run") {
    // Each run takes 10-35 s (a first DHT ping to a bootstrap node not up yet
    // costs OpenDHT's 8 s timeout, then the back-off): three runs, each fetch
    // with 90 s to finish, keep the test within a few minutes on a busy machine.
    constexpr int kRuns = 3, kDevices = 4;
    for (int run = 0; run < kRuns; ++run) {
        TempDir d("ps-cold-" + std::to_string(run));
        auto p = make_patch(d, 2 * 1024 * 1024 + 99 * run, 100 + run);
        const std::string port = free_udp_port();
        const std::string boot = "127.0.0.1:" + port;
        std::vector<std::unique_ptr<Proc>> procs;
        // Everything at once: no process waits for another one to be ready.
        procs.push_back(std::make_unique<Proc>(spawn(
            d, "origin", {"node", "--data", d / "origin", "--domain", "core", "--role", "origin", "--trust", p.pub,
                          "--serve", p.manifest + "=" + p.file, "--bootstrap", boot})));
        std::vector<Proc> devs;
        for (int i = 0; i < kDevices; ++i) {
            auto name = "dev" + std::to_string(i);
            devs.push_back(spawn(d, name, {"fetch", "--data", d / name, "--domain", i % 2 ? "east" : "west", "--trust",
                                           p.pub, "--bootstrap", boot, "--manifest", p.manifest, "--out",
                                           d / (name + ".bin"), "--seed-seconds", "2", "--timeout", "90"}));
        }
        // The bootstrap node last, so the others' first pings may well find nobody.
        procs.push_back(std::make_unique<Proc>(spawn(
            d, "boot", {"node", "--data", d / "boot", "--domain", "core", "--role", "peer", "--trust", p.pub,
                        "--dht-port", port})));
        for (int i = 0; i < kDevices; ++i) {
            auto r = finish(devs[i]);
            INFO("run " << run << " dev" << i << ": " << r.err);
            REQUIRE(r.code == 0);
            CHECK(slurp(d / ("dev" + std::to_string(i) + ".bin")) == slurp(p.file));
        }
    }
}
