// Rollout waves and urgent patches through real daemons on loopback: devices
// outside a staged patch's wave wait (and say so in list and status) while
// those in it and the super-nodes fetch; the schedule's widening lets the rest
// complete; an urgent patch skips both the waves and the start delay.
#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "core/rollout.hpp"
#include "daemon_support.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

Hash32 hash_of_hex(const std::string& hex) {
    auto b = from_hex(hex);
    REQUIRE(b);
    REQUIRE(b->size() == 32);
    Hash32 h;
    std::copy(b->begin(), b->end(), h.begin());
    return h;
}

// The manifest id `publish` printed.
std::string manifest_id_in(const std::string& out) {
    auto p = out.find("manifest id ");
    REQUIRE(p != std::string::npos);
    return out.substr(p + 12, 64);
}

json listed(const std::string& socket, const std::string& name) {
    auto l = ctl(socket, "list");  // kept: a loop over a member of a temporary would dangle
    for (auto& p : l["patches"])
        if (p.value("name", "") == name) return p;
    return json::object();
}

}  // namespace

TEST_CASE("daemon waves: devices in a 30% wave fetch at once, the others wait for the schedule's widening, "
          "super-nodes are not held back") {
    TempDir d("ps-waves");
    Swarm s(d);
    s.start("origin", "origin", "core");
    std::vector<std::string> devices, supers;
    for (std::string dom : {"east", "west", "north"}) {
        s.start(dom + "-super", "super", dom);
        supers.push_back(dom + "-super");
        for (int i = 1; i <= 3; ++i) {
            devices.push_back(dom + "-dev" + std::to_string(i));
            s.start(devices.back(), "peer", dom, {"--start-delay", "0s"});
        }
    }
    std::vector<std::string> all = supers;
    all.insert(all.end(), devices.begin(), devices.end());
    s.wait_connected(all, 1);
    std::map<std::string, Hash32> keys;
    for (auto& n : devices) keys[n] = hash_of_hex(ctl(s.sock(n), "status")["node"].value("key", ""));

    // 30% at once, everyone 20 s after publishing. The wave is drawn from the
    // manifest id, so sign until it splits the nine devices (some in, some out).
    const int widen_s = 20;
    std::string file = d / "fix.bin", manifest = d / "fix.manifest";
    write_random_file(file, 2 * 1024 * 1024 + 99, 31);
    std::set<std::string> in_wave;
    std::int64_t created = 0;
    for (int attempt = 0; attempt < 40 && (in_wave.empty() || in_wave.size() == devices.size()); ++attempt) {
        created = std::time(nullptr);
        auto r = run_cli(d, {"publish", "--key", d / "op.secret", "--file", file, "--name", "fix", "--version", "1",
                             "--label", "try-" + std::to_string(attempt), "--waves",
                             "30%,100%@" + std::to_string(widen_s) + "s", "--out", manifest});
        REQUIRE_MESSAGE(r.code == 0, r.err);
        Hash32 id = hash_of_hex(manifest_id_in(r.out));
        in_wave.clear();
        for (auto& [n, k] : keys)
            if (core::wave_position(k, id) < 300'000) in_wave.insert(n);
    }
    REQUIRE(!in_wave.empty());
    REQUIRE(in_wave.size() < devices.size());
    auto pub = ctl(s.sock("origin"), "publish", {{"manifest", manifest}, {"file", file}});
    REQUIRE_MESSAGE(pub.value("ok", false), pub.dump());

    for (auto& n : supers) REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "fix"); }, 15'000), n);
    for (auto& n : in_wave) REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "fix"); }, 15'000), n);
    // Until the widening, the others know the patch (once the announcement reached
    // them), wait, and say until when.
    for (auto& n : devices) {
        if (in_wave.count(n)) continue;
        bool heard = wait_for([&] { return listed(s.sock(n), "fix").value("state", "") == "waiting for wave"; }, 10'000);
        auto log = slurp(d / (n + ".err"));
        INFO(n << ": " << ctl(s.sock(n), "list").dump() << "\n" << log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
        REQUIRE(heard);
    }
    int rounds = 0;
    for (; std::time(nullptr) < created + widen_s - 2; ++rounds) {
        for (auto& n : devices) {
            if (in_wave.count(n)) continue;
            auto p = listed(s.sock(n), "fix");
            INFO(n << ": " << p.dump());
            REQUIRE(p.value("state", "") == "waiting for wave");
            CHECK(p.value("turn_at", std::int64_t{0}) == created + widen_s);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    REQUIRE(rounds > 0);  // the wave's devices finished well before the widening
    std::string waiting = *std::find_if(devices.begin(), devices.end(), [&](auto& n) { return !in_wave.count(n); });
    auto st = ctl(s.sock(waiting), "status");
    REQUIRE(st["waiting"].size() == 1);
    CHECK(st["waiting"][0].value("waves", "") == "30% at once, 100% at +" + std::to_string(widen_s) + "s");
    CHECK(st["waiting"][0].value("wave_fraction", 1.0) == doctest::Approx(0.3));
    CHECK(st["node"].value("wave_waits", 0) == 1);
    auto human = run_cli(d, {"list", "--socket", s.sock(waiting)});
    CHECK(human.out.find("waiting for wave") != std::string::npos);

    // The schedule widens to everyone: the rest complete, byte for byte.
    for (auto& n : devices)
        REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "fix"); }, (widen_s + 40) * 1000), n);
    for (auto& n : devices) CHECK(slurp(d / (n + "/patches/fix-v1")) == slurp(file));
    CHECK(ctl(s.sock(waiting), "status")["waiting"].empty());
}

TEST_CASE("daemon waves: an urgent patch is fetched at once by every device, past a long start delay") {
    TempDir d("ps-urgent");
    Swarm s(d);
    s.start("origin", "origin", "core");
    s.start("super", "super", "east");
    for (auto* n : {"dev1", "dev2", "dev3"}) s.start(n, "peer", "east", {"--start-delay", "10m"});
    s.wait_connected({"super", "dev1", "dev2", "dev3"}, 1);
    std::string file = s.publish("hot", 2 * 1024 * 1024 + 5, 41, /*mandatory=*/false, true, 1, {"--urgent"});
    for (auto* n : {"dev1", "dev2", "dev3"}) {
        REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "hot"); }, 20'000), n);
        CHECK(slurp(d / (std::string(n) + "/patches/hot-v1")) == slurp(file));
        auto log = slurp(d / (std::string(n) + ".err"));
        auto p = log.find("event=auto_fetch_scheduled");
        REQUIRE(p != std::string::npos);
        CHECK(field(log.substr(p), "delay_ms") == "0");
    }
    // The same devices hold a plain mandatory patch back for their start delay.
    s.publish("calm", 1024 * 1024 + 5, 42, /*mandatory=*/true);
    REQUIRE(wait_for([&] { return complete(s.sock("super"), "calm"); }, 20'000));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    int started = 0;
    for (auto* n : {"dev1", "dev2", "dev3"}) started += states(s.sock(n)).count("calm");
    CHECK(started == 0);  // each drew a delay up to 10 minutes; all three under 2 s is ~1e-11
}
