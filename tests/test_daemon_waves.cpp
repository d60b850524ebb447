// Rollout waves and urgent patches through real daemons on loopback: devices
// outside a staged patch's wave wait (and say so in list and status) while
// those in it and the super-nodes fetch; the schedule's widening lets the rest
// complete; an operator's widen statement does the same at once; an urgent
// patch skips both the waves and the start delay.
#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

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

// Signs `file` as fix v`version` into `manifest` with the schedule `waves`, whose
// first step takes in 30% of devices, again and again (another label each
// time: the wave is drawn from the manifest id) until that wave splits the
// devices: some in, some out. The devices in it; `created` is when the last
// signing began.
std::set<std::string> sign_until_split(const TempDir& d, const std::string& file, const std::string& manifest,
                                       const std::string& waves, const std::map<std::string, Hash32>& keys,
                                       std::int64_t& created, int version = 1) {
    std::set<std::string> in_wave;
    for (int attempt = 0; attempt < 40 && (in_wave.empty() || in_wave.size() == keys.size()); ++attempt) {
        created = std::time(nullptr);
        auto r = run_cli(d, {"publish", "--key", d / "op.secret", "--file", file, "--name", "fix", "--version",
                             std::to_string(version), "--label", "try-" + std::to_string(attempt), "--waves", waves,
                             "--out", manifest});
        REQUIRE_MESSAGE(r.code == 0, r.err);
        Hash32 id = hash_of_hex(manifest_id_in(r.out));
        in_wave.clear();
        for (auto& [n, k] : keys)
            if (core::wave_position(k, id) < 300'000) in_wave.insert(n);
    }
    REQUIRE(!in_wave.empty());
    REQUIRE(in_wave.size() < keys.size());
    return in_wave;
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

    // 30% at once, everyone 20 s after publishing; some of the nine devices in the first wave, some out.
    const int widen_s = 20;
    std::string file = d / "fix.bin", manifest = d / "fix.manifest";
    write_random_file(file, 2 * 1024 * 1024 + 99, 31);
    std::int64_t created = 0;
    const auto in_wave =
        sign_until_split(d, file, manifest, "30%,100%@" + std::to_string(widen_s) + "s", keys, created);
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
    // Each drew a delay of up to 10 minutes (a device may draw a short one:
    // 1 in 120 under 5 s); one whose delay is not over has not started.
    int waiting = 0;
    for (auto* n : {"dev1", "dev2", "dev3"}) {
        std::istringstream log(slurp(d / (std::string(n) + ".err")));
        std::string line, scheduled;
        while (std::getline(log, line))
            if (line.find("event=auto_fetch_scheduled") != std::string::npos && line.find(" name=calm") != std::string::npos)
                scheduled = line;
        REQUIRE_MESSAGE(!scheduled.empty(), n);
        auto delay = std::stoull(field(scheduled + "\n", "delay_ms"));
        CHECK(delay <= 600'000);
        if (delay < 5'000) continue;
        ++waiting;
        CHECK_MESSAGE(states(s.sock(n)).count("calm") == 0, n << " started before its delay of " << delay << " ms");
    }
    CHECK(waiting > 0);  // all three under 5 s: 1 in 1.7 million
}

TEST_CASE("daemon waves: an operator's widen statement handed to the origin brings every waiting device in at once, "
          "a lower or untrusted one changes nothing, the widening survives a restart, and a halted release stops "
          "waiting") {
    TempDir d("ps-widen");
    Swarm s(d);
    s.start("origin", "origin", "core");
    s.start("super", "super", "east");
    std::vector<std::string> devices;
    for (int i = 1; i <= 5; ++i) {
        devices.push_back("dev" + std::to_string(i));
        s.start(devices.back(), "peer", "east", {"--start-delay", "0s"});
    }
    s.wait_connected(devices, 1);
    std::map<std::string, Hash32> keys;
    for (auto& n : devices) keys[n] = hash_of_hex(ctl(s.sock(n), "status")["node"].value("key", ""));

    // 30% and no later step: the rest wait for the operator.
    std::string file = d / "fix.bin", manifest = d / "fix.manifest";
    write_random_file(file, 2 * 1024 * 1024 + 7, 51);
    std::int64_t created = 0;
    const auto in_wave = sign_until_split(d, file, manifest, "30%", keys, created);
    auto pub = ctl(s.sock("origin"), "publish", {{"manifest", manifest}, {"file", file}});
    REQUIRE_MESSAGE(pub.value("ok", false), pub.dump());
    for (auto& n : in_wave) REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "fix"); }, 20'000), n);
    std::vector<std::string> waiting;
    for (auto& n : devices)
        if (!in_wave.count(n)) waiting.push_back(n);
    auto all_waiting = [&] {
        for (auto& n : waiting)
            if (listed(s.sock(n), "fix").value("state", "") != "waiting for wave") return false;
        return true;
    };
    REQUIRE(wait_for(all_waiting, 10'000));
    auto w = listed(s.sock(waiting[0]), "fix");
    CHECK(w["turn_at"].is_null());  // no step of the schedule reaches it
    CHECK(w.value("wave_fraction", 0.0) == doctest::Approx(0.3));
    CHECK(w["widened_to"].is_null());

    // A widening signed by a key the nodes do not trust is refused and counted; nobody moves.
    auto k = run_cli(d, {"keygen", "--secret", d / "stranger.secret", "--public", d / "stranger.public"});
    REQUIRE_MESSAGE(k.code == 0, k.err);
    auto forged = run_cli(d, {"widen", "--key", d / "stranger.secret", "--manifest", manifest, "--to", "100%", "--out",
                              d / "forged.statement"});
    REQUIRE_MESSAGE(forged.code == 0, forged.err);
    auto refused = run_cli(d, {"statement", "--file", d / "forged.statement", "--socket", s.sock("origin")});
    CHECK(refused.code == 1);
    CHECK(refused.err.find("not trusted") != std::string::npos);
    CHECK(ctl(s.sock("origin"), "status")["node"]["statements"].value("rejected", 0) == 1);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    CHECK(all_waiting());

    // A release the node does not list, a file that is no manifest: refused naming the problem.
    auto unknown = run_cli(d, {"widen", "--key", d / "op.secret", "--name", "fix", "--version", "2", "--socket",
                               s.sock("origin"), "--to", "100%", "--out", d / "w2.statement"});
    CHECK(unknown.code == 1);
    CHECK(unknown.err.find("the node does not list fix v2") != std::string::npos);
    std::string junk = d / "junk.manifest";
    std::ofstream(junk) << "not a manifest";
    auto not_manifest = run_cli(d, {"widen", "--key", d / "op.secret", "--manifest", junk, "--to", "100%", "--out",
                                    d / "w3.statement"});
    CHECK(not_manifest.code == 1);
    CHECK(not_manifest.err.find(junk + ": manifest: ") != std::string::npos);

    // The operator widens to everyone (the release named, its id from the origin's list).
    auto signed_ = run_cli(d, {"widen", "--key", d / "op.secret", "--name", "fix", "--version", "1", "--socket",
                               s.sock("origin"), "--to", "100%", "--out", d / "widen.statement"});
    REQUIRE_MESSAGE(signed_.code == 0, signed_.err);
    CHECK(signed_.out.find("widened to 100%") != std::string::npos);
    const auto t0 = std::chrono::steady_clock::now();
    auto sent = run_cli(d, {"statement", "--file", d / "widen.statement", "--socket", s.sock("origin")});
    REQUIRE_MESSAGE(sent.code == 0, sent.err);
    constexpr int kBoundMs = 15'000;
    const bool done = wait_for([&] {
        for (auto& n : waiting)
            if (!complete(s.sock(n), "fix")) return false;
        return true;
    }, kBoundMs);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("the widening brought " << waiting.size() << " waiting devices to complete in " << ms << " ms (bound "
                                    << kBoundMs << " ms)");
    CHECK(done);
    CHECK(ms <= kBoundMs);
    for (auto& n : waiting) CHECK(slurp(d / (n + "/patches/fix-v1")) == slurp(file));
    auto after = listed(s.sock(waiting[0]), "fix");
    CHECK(after.value("wave_fraction", 0.0) == doctest::Approx(1.0));
    CHECK(after.value("widened_to", 0.0) == doctest::Approx(1.0));
    auto rollout = ctl(s.sock("origin"), "rollout", {{"name", "fix"}});
    CHECK(rollout.value("widened_to", 0.0) == doctest::Approx(1.0));
    CHECK(run_cli(d, {"list", "--socket", s.sock(waiting[0])}).out.find("wave 100% (widened)") != std::string::npos);
    CHECK(run_cli(d, {"rollout", "--socket", s.sock("origin"), "fix"}).out.find("wave 100% (widened) of devices") !=
          std::string::npos);

    // A lower widening later: accepted as a statement, changes nothing, not kept.
    auto lower = run_cli(d, {"widen", "--key", d / "op.secret", "--manifest", manifest, "--to", "50%", "--out",
                             d / "lower.statement"});
    REQUIRE_MESSAGE(lower.code == 0, lower.err);
    auto sent_lower = run_cli(d, {"statement", "--file", d / "lower.statement", "--socket", s.sock("origin")});
    CHECK(sent_lower.code == 0);
    CHECK(listed(s.sock("origin"), "fix").value("widened_to", 0.0) == doctest::Approx(1.0));
    auto hex_in = [](const std::string& statement_file) {  // its second line
        auto t = slurp(statement_file);
        t = t.substr(t.find('\n') + 1);
        return t.substr(0, t.find('\n'));
    };
    const std::string hex_all = hex_in(d / "widen.statement"), hex_lower = hex_in(d / "lower.statement");
    CHECK(slurp(d / "origin.trust").find(hex_all) != std::string::npos);
    CHECK(slurp(d / "origin.trust").find(hex_lower) == std::string::npos);

    // Restarted, a device still knows the widening (its trust file).
    Proc& dev = *s.procs[2 + static_cast<std::size_t>(std::find(devices.begin(), devices.end(), waiting[0]) - devices.begin())];
    ::kill(dev.pid, SIGTERM);
    REQUIRE(finish(dev).code == 0);
    std::filesystem::remove(d / (waiting[0] + ".out"));
    s.start(waiting[0], "peer", "east", {"--start-delay", "0s"});
    CHECK(slurp(d / (waiting[0] + ".trust")).find(hex_all) != std::string::npos);
    auto again = listed(s.sock(waiting[0]), "fix");
    INFO(again.dump());
    CHECK(again.value("widened_to", 0.0) == doctest::Approx(1.0));

    // The next release, halted while devices wait for it: they stop waiting,
    // and a widening of it then starts nothing.
    std::string file2 = d / "fix2.bin", manifest2 = d / "fix2.manifest";
    write_random_file(file2, 1024 * 1024 + 3, 52);
    const auto in_wave2 = sign_until_split(d, file2, manifest2, "30%", keys, created, 2);
    pub = ctl(s.sock("origin"), "publish", {{"manifest", manifest2}, {"file", file2}});
    REQUIRE_MESSAGE(pub.value("ok", false), pub.dump());
    auto v2_state = [&](const std::string& n) {
        auto l = ctl(s.sock(n), "list");
        for (auto& p : l["patches"])
            if (p.value("name", "") == "fix" && p.value("version", 0) == 2) return p.value("state", "");
        return std::string();
    };
    std::vector<std::string> waiting2;
    for (auto& n : devices)
        if (!in_wave2.count(n)) waiting2.push_back(n);
    for (auto& n : waiting2) REQUIRE_MESSAGE(wait_for([&] { return v2_state(n) == "waiting for wave"; }, 10'000), n);
    auto h = run_cli(d, {"halt", "--key", d / "op.secret", "--name", "fix", "--version", "2", "--out", d / "halt.statement"});
    REQUIRE_MESSAGE(h.code == 0, h.err);
    REQUIRE(run_cli(d, {"statement", "--file", d / "halt.statement", "--socket", s.sock("origin")}).code == 0);
    for (auto& n : waiting2) CHECK_MESSAGE(wait_for([&] { return v2_state(n).empty(); }, 10'000), n);
    auto w2 = run_cli(d, {"widen", "--key", d / "op.secret", "--manifest", manifest2, "--to", "100%", "--out",
                          d / "widen2.statement"});
    REQUIRE_MESSAGE(w2.code == 0, w2.err);
    REQUIRE(run_cli(d, {"statement", "--file", d / "widen2.statement", "--socket", s.sock("origin")}).code == 0);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    for (auto& n : waiting2) {
        CHECK_MESSAGE(v2_state(n).empty(), n);
        CHECK_FALSE(std::filesystem::exists(d / (n + "/patches/fix-v2")));
    }
}
