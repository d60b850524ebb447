// The daemons in a swarm, as users run them: the origin publishes with
// `publish --announce`, devices fetch mandatory patches on their own after a
// random delay, super-nodes prefetch into an LRU cache under a quota, patches
// are fetched by name, and `rollout` counts completions per domain from what
// the DHT says. Separate processes, real OpenDHT nodes, loopback only.
#include <doctest/doctest.h>

#include <ctime>
#include <filesystem>
#include <set>

#include "daemon_support.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

TEST_CASE("daemon network: publish --announce makes devices fetch a mandatory patch after a random delay, "
          "super-nodes prefetch, and a device with auto-fetch off does not") {
    TempDir d("ps-auto");
    Swarm s(d);
    s.start("origin", "origin", "core");
    s.start("super", "super", "east");
    s.start("dev1", "peer", "east", {"--start-delay", "3s"});
    s.start("dev2", "peer", "east", {"--start-delay", "3s"});
    s.start("manual", "peer", "east", {"--auto-fetch", "off"});
    s.wait_connected({"super", "dev1", "dev2", "manual"}, 1);

    std::string file = s.publish("fix", 3 * 1024 * 1024 + 4321, 7, /*mandatory=*/true);
    for (auto* n : {"super", "dev1", "dev2"}) {
        bool ok = wait_for([&] { return complete(s.sock(n), "fix"); }, 30'000);
        INFO(n << ": " << ctl(s.sock(n), "list").dump());
        REQUIRE(ok);
    }
    // Devices write the verified file to DATA/patches/NAME-vVERSION; the super-node keeps a cached copy only.
    CHECK(slurp(d / "dev1/patches/fix-v1") == slurp(file));
    CHECK(slurp(d / "dev2/patches/fix-v1") == slurp(file));
    CHECK_FALSE(fs::exists(d / "super/patches"));
    // Each device drew its delay within the configured window; the super-node started at once.
    for (auto* n : {"dev1", "dev2"}) {
        auto log = slurp(d / (std::string(n) + ".err"));
        auto p = log.find("event=auto_fetch_scheduled");
        REQUIRE(p != std::string::npos);
        auto delay = std::stoull(field(log.substr(p), "delay_ms"));
        CHECK(delay <= 3000);
    }
    auto slog = slurp(d / "super.err");
    CHECK(slog.find("event=auto_fetch_scheduled") != std::string::npos);
    CHECK(field(slog.substr(slog.find("event=auto_fetch_scheduled")), "delay_ms") == "0");
    CHECK(ctl(s.sock("dev1"), "status")["node"].value("auto_fetches", 0) == 1);
    // The device with auto-fetch off heard the announcement and took nothing.
    CHECK(states(s.sock("manual")).empty());
    CHECK(slurp(d / "manual.err").find("event=announcement name=fix") != std::string::npos);

    // A patch that is not mandatory: the super-node prefetches it, devices leave it alone.
    s.publish("extra", 1024 * 1024 + 5, 8, /*mandatory=*/false);
    REQUIRE(wait_for([&] { return complete(s.sock("super"), "extra"); }, 30'000));
    std::this_thread::sleep_for(std::chrono::seconds(4));  // past the devices' longest delay
    CHECK(states(s.sock("dev1")).count("extra") == 0);
    CHECK(states(s.sock("dev2")).count("extra") == 0);
}

TEST_CASE("daemon network: a patch is fetched by name, through a daemon and one-shot, and an unknown name is refused") {
    TempDir d("ps-byname");
    Swarm s(d);
    s.start("origin", "origin", "core");
    s.start("dev", "peer", "east", {"--auto-fetch", "off"});
    s.wait_connected({"dev"}, 1);
    std::string file = s.publish("tool", 2 * 1024 * 1024 + 77, 9, /*mandatory=*/false);

    // Through the daemon, with a progress line per second (not a terminal).
    auto r = run_cli(d, {"fetch", "--daemon", s.sock("dev"), "--name", "tool", "--timeout", "60"});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("complete " + (d / "dev/patches/tool-v1")) != std::string::npos);
    CHECK(slurp(d / "dev/patches/tool-v1") == slurp(file));

    // One-shot, without a daemon: the node finds the manifest under the name in the DHT.
    auto one = run_cli(d, {"fetch", "--data", d / "oneshot", "--domain", "west", "--trust", s.trust, "--certificate",
                           s.enroll("oneshot", "peer", "west"), "--bootstrap",
                           "127.0.0.1:" + s.dht, "--name", "tool", "--out", d / "oneshot.bin", "--seed-ratio", "0",
                           "--timeout", "60"});
    INFO(one.out << one.err);
    REQUIRE(one.code == 0);
    CHECK(one.out.find("found tool v1") != std::string::npos);
    CHECK(slurp(d / "oneshot.bin") == slurp(file));

    // Unknown names and bad requests name the problem.
    auto unknown = run_cli(d, {"add", "--socket", s.sock("dev"), "--name", "nosuch"});
    CHECK(unknown.code != 0);
    CHECK(unknown.err.find("no manifest named 'nosuch' is known") != std::string::npos);
    auto both = ctl(s.sock("dev"), "add", {{"name", "tool"}, {"manifest", d / "tool-v1.manifest"}});
    CHECK(both["error"] == "add takes a manifest or a name, not both");
    auto bad = ctl(s.sock("dev"), "add", {{"name", "../etc"}});
    CHECK(bad["error"].get<std::string>().find("is not a patch name") != std::string::npos);
    auto not_origin = ctl(s.sock("dev"), "publish", {{"manifest", d / "tool-v1.manifest"}, {"file", file}});
    CHECK(not_origin["error"] == "only an origin publishes; this node's role is peer");
}

TEST_CASE("daemon network: a super-node's cache evicts the least recently used patch under its quota, "
          "never one still being served") {
    TempDir d("ps-evict");
    Swarm s(d);
    const std::size_t size = 3 * 1024 * 1024 + 1000;
    s.start("origin", "origin", "core");
    // Room for two patches.
    s.start("super", "super", "east", {"--quota", std::to_string(2 * size + 100)});
    s.wait_connected({"super"}, 1);
    auto cached = [&] {
        std::set<std::string> names;
        for (auto& [n, st] : states(s.sock("super"))) names.insert(n);
        return names;
    };

    s.publish("pa", size, 21, false);
    REQUIRE(wait_for([&] { return complete(s.sock("super"), "pa"); }, 30'000));
    s.publish("pb", size, 22, false);
    REQUIRE(wait_for([&] { return complete(s.sock("super"), "pb"); }, 30'000));
    // A third patch: pa, used least recently and served to nobody, makes room.
    s.publish("pc", size, 23, false);
    REQUIRE(wait_for([&] { return complete(s.sock("super"), "pc"); }, 30'000));
    CHECK(cached() == std::set<std::string>{"pb", "pc"});
    // Its download folder went with it: two folders remain in the data folder.
    auto folders = [&] {
        int n = 0;
        for (auto& e : fs::directory_iterator(d / "super"))
            n += e.is_directory() && e.path().filename().string().size() == 64;
        return n;
    };
    CHECK(folders() == 2);
    CHECK_FALSE(fs::exists(d / "super/patches"));

    // A device of the domain downloads pb slowly from the super-node: pb is now
    // the least recently used entry but is being served, so pc must go instead.
    s.start("dev", "peer", "east", {"--auto-fetch", "off", "--download-limit", "100K"});
    REQUIRE(ctl(s.sock("dev"), "add", {{"name", "pb"}}).value("ok", false));
    bool serving = wait_for([&] {
        auto st = ctl(s.sock("super"), "status");
        for (auto& p : st["patches"])
            if (p["name"] == "pb" && p.value("bytes_uploaded", 0) > 0) return true;
        return false;
    }, 30'000);
    REQUIRE(serving);
    CHECK_FALSE(complete(s.sock("dev"), "pb"));
    s.publish("pd", size, 24, false);
    REQUIRE(wait_for([&] { return complete(s.sock("super"), "pd"); }, 30'000));
    CHECK(cached() == std::set<std::string>{"pb", "pd"});
    auto st = ctl(s.sock("super"), "status");
    CHECK(st["node"].value("evictions", 0) == 2);
    // The device still completes pb, byte for byte.
    REQUIRE(wait_for([&] { return complete(s.sock("dev"), "pb"); }, 60'000));
    CHECK(slurp(d / "dev/patches/pb-v1") == slurp(d / "pb-v1.bin"));

    // The super-node's log names each eviction.
    auto log = slurp(d / "super.err");
    CHECK(log.find("event=evicted") != std::string::npos);
    CHECK(log.find("name=\"pa v1\"") != std::string::npos);
}

TEST_CASE("daemon network: `rollout` counts, per domain, the nodes online, holding and complete in a 3-domain swarm") {
    TempDir d("ps-rollout");
    Swarm s(d);
    s.start("origin", "origin", "core");
    for (std::string dom : {"east", "west", "north"}) {
        s.start(dom + "-super", "super", dom);
        s.start(dom + "-dev1", "peer", dom, {"--start-delay", "1s"});
        s.start(dom + "-dev2", "peer", dom, {"--start-delay", "1s"});
    }
    // east: one more device that does not fetch on its own (online, holds nothing);
    // west: one more whose download is throttled, then paused (holds part of the patch).
    s.start("east-off", "peer", "east", {"--auto-fetch", "off"});
    s.start("west-slow", "peer", "west", {"--download-limit", "48K", "--start-delay", "0"});
    s.wait_connected({"east-super", "west-super", "north-super"}, 1);

    s.publish("fix", 3 * 1024 * 1024 + 99, 31, /*mandatory=*/true);
    // west-slow is paused as soon as it holds a segment: its limit lets a
    // segment's burst and one overdrawn segment through at once, then one
    // segment per 21 s, so waiting for the others first could let it finish.
    REQUIRE(wait_for([&] { return patch_status(s.sock("west-slow")).value("held", 0) > 0; }, 20'000));
    auto paused = ctl(s.sock("west-slow"), "pause", {{"patch", "fix"}});
    INFO(paused.dump(), " ", patch_status(s.sock("west-slow")).dump());
    REQUIRE(paused.value("ok", false));
    for (std::string n : {"east-super", "east-dev1", "east-dev2", "west-super", "west-dev1", "west-dev2", "north-super",
                          "north-dev1", "north-dev2"})
        REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "fix"); }, 40'000), n);
    REQUIRE_FALSE(complete(s.sock("west-slow"), "fix"));

    struct Want {
        unsigned online, holders, complete, supers;
    };
    std::map<std::string, Want> want{
        {"core", {1, 1, 1, 0}}, {"east", {4, 3, 3, 1}}, {"west", {4, 4, 3, 1}}, {"north", {3, 3, 3, 1}}};
    json last;
    // Records settle within a few seconds (a holder refreshes its record 2 s after its count changed).
    bool right = wait_for([&] {
        auto r = run_cli(d, {"rollout", "fix", "--json", "--data", d / "origin"});
        if (r.code != 0) return false;
        last = json::parse(r.out, nullptr, false);
        if (!last.is_object() || last["domains"].size() != want.size()) return false;
        for (auto& dom : last["domains"]) {
            auto w = want.find(dom.value("domain", ""));
            if (w == want.end() || dom.value("online", 0u) != w->second.online ||
                dom.value("holders", 0u) != w->second.holders || dom.value("complete", 0u) != w->second.complete ||
                dom.value("supers", 0u) != w->second.supers || dom.value("supers_complete", 0u) != w->second.supers)
                return false;
        }
        return true;
    }, 30'000);
    INFO(last.dump(1));
    CHECK(right);
    CHECK_FALSE(complete(s.sock("west-slow"), "fix"));  // it really holds part of it
    CHECK(last.value("complete", 0) == 10);
    CHECK(last.value("online", 0) == 12);

    // The table form.
    auto table = run_cli(d, {"rollout", "fix", "--data", d / "origin"});
    CHECK(table.code == 0);
    CHECK(table.out.find("fix v1") != std::string::npos);
    CHECK(table.out.find("of 12 nodes online have it complete, in 4 domains") != std::string::npos);
    // A name nobody announced.
    auto none = run_cli(d, {"rollout", "nosuch", "--data", d / "origin"});
    CHECK(none.code != 0);
    CHECK(none.err.find("no manifest named 'nosuch'") != std::string::npos);
}

TEST_CASE("daemon network: version 2 supersedes version 1 on a device, which then refuses version 1, also after a restart") {
    TempDir d("ps-rollback");
    Swarm s(d);
    s.start("origin", "origin", "core");
    Proc& dev = s.start("dev", "peer", "east", {"--start-delay", "0"});
    s.wait_connected({"dev"}, 1);
    std::string v1 = s.publish("app", 1024 * 1024 + 3, 41, /*mandatory=*/true, /*announce=*/true, 1);
    REQUIRE(wait_for([&] { return complete(s.sock("dev"), "app"); }, 30'000));
    CHECK(slurp(d / "dev/patches/app-v1") == slurp(v1));
    std::string v2 = s.publish("app", 1024 * 1024 + 5, 42, /*mandatory=*/true, /*announce=*/true, 2);
    auto only_v2 = [&] {
        auto l = ctl(s.sock("dev"), "list");
        return l["patches"].size() == 1 && l["patches"][0].value("version", 0) == 2 &&
               l["patches"][0].value("state", "") == "complete";
    };
    bool superseded = wait_for(only_v2, 30'000);
    INFO(ctl(s.sock("dev"), "list").dump());
    REQUIRE(superseded);
    CHECK(slurp(d / "dev/patches/app-v2") == slurp(v2));
    CHECK(slurp(d / "dev/patches/app-v1") == slurp(v1));  // the installed copy is not the node's to delete
    CHECK(slurp(d / "dev.err").find("event=superseded") != std::string::npos);
    CHECK(slurp(d / "dev/accepted").find("\napp 2 ") != std::string::npos);

    ::kill(dev.pid, SIGTERM);
    REQUIRE(finish(dev).code == 0);
    fs::remove(d / "dev.out");  // so that the next `ready` line is the new process's
    s.start("dev", "peer", "east", {"--start-delay", "0"});
    auto old = run_cli(d, {"add", "--socket", s.sock("dev"), "--manifest", d / "app-v1.manifest"});
    CHECK(old.code != 0);
    CHECK_MESSAGE(old.err.find("rollback: app version 1 is older than accepted version 2") != std::string::npos, old.err);
    CHECK(states(s.sock("dev")) == std::map<std::string, std::string>{{"app", "complete"}});
}

TEST_CASE("daemon network: a device under its quota makes room for a new version by dropping the old one, "
          "never for another patch") {
    TempDir d("ps-devquota");
    Swarm s(d);
    const std::size_t size = 2 * 1024 * 1024 + 7;
    s.start("origin", "origin", "core");
    s.start("dev", "peer", "east", {"--start-delay", "0", "--quota", std::to_string(size * 3 / 2)});
    s.wait_connected({"dev"}, 1);
    s.publish("app", size, 51, /*mandatory=*/true, /*announce=*/true, 1);
    REQUIRE(wait_for([&] { return complete(s.sock("dev"), "app"); }, 30'000));
    // Another patch does not fit, and the device's own download is not evicted for it.
    s.publish("other", size, 52, /*mandatory=*/false, /*announce=*/true, 1);
    auto refused = ctl(s.sock("dev"), "add", {{"name", "other"}});
    CHECK_FALSE(refused.value("ok", true));
    CHECK(refused.value("error", "").find("not older versions of this patch") != std::string::npos);
    // Version 2 of the same patch fits once version 1 goes.
    std::string v2 = s.publish("app", size, 53, /*mandatory=*/true, /*announce=*/true, 2);
    bool replaced = wait_for([&] {
        auto l = ctl(s.sock("dev"), "list");
        return l["patches"].size() == 1 && l["patches"][0].value("version", 0) == 2 &&
               l["patches"][0].value("state", "") == "complete";
    }, 30'000);
    INFO(ctl(s.sock("dev"), "list").dump() << slurp(d / "dev.err"));
    REQUIRE(replaced);
    CHECK(slurp(d / "dev/patches/app-v2") == slurp(v2));
    CHECK(slurp(d / "dev.err").find("event=evicted") != std::string::npos);
}

TEST_CASE("daemon network: a key rotation and a certificate revocation spread to every node of a 3-domain swarm "
          "without restart, and the revoked node is refused") {
    TempDir d("ps-dnet-stmt");
    Swarm s(d);
    const std::vector<std::string> names{"origin", "super-a", "super-b", "super-c", "dev-a", "dev-b", "dev-c"};
    s.start("origin", "origin", "core");
    for (std::string dom : {"a", "b", "c"}) s.start("super-" + dom, "super", dom);
    for (std::string dom : {"a", "b", "c"}) s.start("dev-" + dom, "peer", dom, {"--auto-fetch", "off"});
    s.wait_connected(names, 1);

    // The operator introduces a second key, as a statement handed to the origin only.
    auto k = run_cli(d, {"keygen", "--secret", d / "new.secret", "--public", d / "new.public"});
    REQUIRE_MESSAGE(k.code == 0, k.err);
    auto rot = run_cli(d, {"rotate-key", "--key", d / "op.secret", "--new-public", d / "new.public", "--trust",
                           d / "scratch.trust", "--statement-out", d / "rotation.statement"});
    REQUIRE_MESSAGE(rot.code == 0, rot.err);
    auto t0 = std::chrono::steady_clock::now();
    auto sent = run_cli(d, {"statement", "--file", d / "rotation.statement", "--socket", s.sock("origin")});
    REQUIRE_MESSAGE(sent.code == 0, sent.err);
    auto keys = [&](const std::string& n) { return ctl(s.sock(n), "status")["node"]["trust"].value("keys", 0); };
    for (auto& n : names) {
        bool ok = wait_for([&] { return keys(n) == 2; }, 20'000);
        INFO(n << " never trusted the new key");
        CHECK(ok);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("the rotation reached all 7 nodes in " << ms << " ms");
    for (std::size_t i = 0; i < s.procs.size(); ++i) {
        CHECK(::kill(s.procs[i]->pid, 0) == 0);  // the same processes: no restart
        CHECK(slurp(d / (names[i] + ".trust")).find("\nrotate ") != std::string::npos);  // and on disk
    }

    // The new key revokes dev-c's certificates: every node applies it, and dev-c is refused.
    auto rev = run_cli(d, {"revoke-cert", "--key", d / "new.secret", "--node-public", d / "dev-c/node.public", "--out",
                           d / "revoke.statement"});
    REQUIRE_MESSAGE(rev.code == 0, rev.err);
    sent = run_cli(d, {"statement", "--file", d / "revoke.statement", "--socket", s.sock("dev-a")});
    REQUIRE_MESSAGE(sent.code == 0, sent.err);
    auto refused_revoked = [&] {
        std::uint64_t n = 0;
        for (auto& name : names) {
            auto e = ctl(s.sock(name), "status")["node"]["enrollment"];
            n += e["peers_refused"].value("revoked", 0) + e["records_refused"].value("revoked", 0);
        }
        return n;
    };
    CHECK(wait_for([&] { return ctl(s.sock("dev-c"), "status")["node"].value("peers", 1) == 0; }, 20'000));
    CHECK(refused_revoked() > 0);
    for (auto& n : names) CHECK(slurp(d / (n + ".trust")).find("\nstatement ") != std::string::npos);
    // It stays out: the others keep refusing it while it tries again.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    CHECK(ctl(s.sock("dev-c"), "status")["node"].value("peers", 1) == 0);
    CHECK(ctl(s.sock("dev-b"), "status")["node"].value("peers", 0) >= 1);
}

TEST_CASE("daemon network: a halt statement stops a running rollout in a 3-domain swarm within a bounded time, "
          "also after a restart") {
    TempDir d("ps-dnet-halt");
    Swarm s(d);
    const std::vector<std::string> names{"origin", "super-a", "super-b", "super-c", "dev-a", "dev-b", "dev-c"};
    s.start("origin", "origin", "core", {"--upload-limit", "512K"});
    for (std::string dom : {"a", "b", "c"}) s.start("super-" + dom, "super", dom, {"--download-limit", "256K"});
    for (std::string dom : {"a", "b", "c"})
        s.start("dev-" + dom, "peer", dom, {"--start-delay", "0", "--download-limit", "128K"});
    s.wait_connected(names, 1);
    s.publish("big", 24u << 20, 77, /*mandatory=*/true);  // minutes at these rates
    auto downloading = [&](const std::string& n) {
        const auto list = ctl(s.sock(n), "list");
        for (auto& p : list["patches"])
            if (p.value("name", "") == "big" && p.value("state", "") == "downloading" && p.value("progress", 0.0) > 0)
                return true;
        return false;
    };
    REQUIRE(wait_for([&] { return downloading("dev-a") || downloading("dev-b") || downloading("dev-c"); }, 60'000));
    for (std::string dom : {"a", "b", "c"}) REQUIRE_FALSE(complete(s.sock("dev-" + dom), "big"));  // still rolling out

    auto h = run_cli(d, {"halt", "--key", d / "op.secret", "--name", "big", "--version", "1", "--out", d / "halt.statement"});
    REQUIRE_MESSAGE(h.code == 0, h.err);
    const auto t0 = std::chrono::steady_clock::now();
    auto sent = run_cli(d, {"statement", "--file", d / "halt.statement", "--socket", s.sock("origin")});
    REQUIRE_MESSAGE(sent.code == 0, sent.err);
    constexpr int kBoundMs = 10'000;
    const bool stopped = wait_for([&] {
        for (auto& n : names)
            if (states(s.sock(n)).count("big")) return false;
        return true;
    }, kBoundMs);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("the halt stopped the rollout on all 7 nodes in " << ms << " ms (bound " << kBoundMs << " ms)");
    CHECK(stopped);
    CHECK(ms <= kBoundMs);
    for (std::string dom : {"a", "b", "c"}) CHECK_FALSE(std::filesystem::exists(d / ("dev-" + dom + "/patches/big-v1")));
    // Nobody takes it up again: not by name, not after a restart.
    auto again = run_cli(d, {"add", "--socket", s.sock("dev-a"), "--name", "big"});
    CHECK(again.code != 0);
    Proc& dev = *s.procs[4];
    ::kill(dev.pid, SIGTERM);
    REQUIRE(finish(dev).code == 0);
    std::filesystem::remove(d / "dev-a.out");
    s.start("dev-a", "peer", "a", {"--start-delay", "0"});
    std::this_thread::sleep_for(std::chrono::seconds(5));
    CHECK(states(s.sock("dev-a")).count("big") == 0);
    CHECK_FALSE(std::filesystem::exists(d / "dev-a/patches/big-v1"));
}

TEST_CASE("daemon network: a device with a freshness window says stale in status and metrics until the enrolled "
          "origin's freshness reaches it") {
    TempDir d("ps-dnet-fresh");
    Swarm s(d);
    // The device starts alone: nothing from the origin yet.
    s.start("dev", "peer", "a", {"--freshness-window", "5m", "--metrics", "127.0.0.1:0", "--auto-fetch", "off"});
    const auto mport = static_cast<std::uint16_t>(std::stoi(field(s.ready_lines["dev"], "metrics").substr(10)));
    auto freshness = [&](const std::string& n) { return ctl(s.sock(n), "status")["node"]["freshness"]; };
    auto stale_metric = [&] {
        auto resp = http_get(mport, "GET /metrics HTTP/1.0\r\n\r\n");
        return sample(resp.substr(resp.find("\r\n\r\n") + 2), "patchswarm_stale");
    };
    auto f = freshness("dev");
    CHECK(f.value("stale", false));
    CHECK(f.value("window_s", 0) == 300);
    CHECK(f.value("issued_unix", -1) == 0);
    CHECK(stale_metric() == 1u);

    // The enrolled origin joins (bootstrapping from the device): its freshness reaches the device by gossip.
    const auto before = std::time(nullptr);
    s.start("origin", "origin", "core");
    CHECK(wait_for([&] { return !freshness("dev").value("stale", true); }, 30'000));
    f = freshness("dev");
    CHECK(f.value("issued_unix", std::int64_t{0}) >= before - 1);
    CHECK(f.value("rejected", 1) == 0);
    CHECK(stale_metric() == 0u);
    // Freshness off (no window): never stale, whatever it has seen.
    auto o = freshness("origin");
    CHECK_FALSE(o.value("stale", true));
    CHECK(o.value("window_s", -1) == 0);
}

TEST_CASE("daemon network: a release halted while devices are still in their start delay is never fetched") {
    TempDir d("ps-dnet-halt-delay");
    Swarm s(d);
    s.start("origin", "origin", "core");
    std::vector<std::string> devs;
    for (int i = 0; i < 6; ++i) {
        devs.push_back("dev" + std::to_string(i));
        s.start(devs.back(), "peer", "east", {"--start-delay", "6s"});
    }
    s.wait_connected(devs, 1);
    auto h = run_cli(d, {"halt", "--key", d / "op.secret", "--name", "late", "--version", "1", "--out", d / "halt.statement"});
    REQUIRE_MESSAGE(h.code == 0, h.err);
    s.publish("late", 1024 * 1024 + 17, 91, /*mandatory=*/true);
    auto sent = run_cli(d, {"statement", "--file", d / "halt.statement", "--socket", s.sock("origin")});
    REQUIRE_MESSAGE(sent.code == 0, sent.err);
    const auto halted_at = std::chrono::steady_clock::now();
    // The devices whose drawn delay ends well after the halt went out.
    std::vector<std::string> late;
    for (auto& n : devs) {
        std::string log;
        REQUIRE(wait_for([&] { return (log = slurp(d / (n + ".err"))).find("event=auto_fetch_scheduled") != std::string::npos; },
                         10'000));
        if (std::stoull(field(log.substr(log.find("event=auto_fetch_scheduled")), "delay_ms")) >= 2'000) late.push_back(n);
    }
    REQUIRE_MESSAGE(!late.empty(), "every device drew a delay under 2 s (chance 1 in 700): nothing to check");
    std::this_thread::sleep_until(halted_at + std::chrono::milliseconds(6'500));  // past the longest delay
    for (auto& n : late) {
        INFO(n);
        CHECK(states(s.sock(n)).count("late") == 0);
        CHECK_FALSE(std::filesystem::exists(d / (n + "/patches/late-v1")));
        CHECK(slurp(d / (n + ".err")).find("was=\"start delay\"") != std::string::npos);
    }
}
