// Device policies through real daemons on loopback: a device that is metered,
// on a low battery or over its monthly cap stops serving (a peer gets the
// segments from another holder), business hours lower its rates, and a low
// disk stops new downloads but not urgent ones. Settings come from the config
// file and change live through the control socket or `reload`.
#include <doctest/doctest.h>

#include <ctime>
#include <fstream>

#include "daemon_support.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

std::string write_config(const TempDir& d, const std::string& name, const std::string& text) {
    std::string path = d / (name + ".toml");
    std::ofstream(path) << text;
    return path;
}

std::uint64_t uploaded(const std::string& socket, const std::string& patch) {
    auto st = ctl(socket, "status");
    for (auto& p : st["patches"])
        if (p.value("name", "") == patch) return p.value("bytes_uploaded", std::uint64_t{0});
    return 0;
}

json policy(const std::string& socket, const std::map<std::string, std::string>& args = {}) {
    auto r = ctl(socket, "policy", args);
    REQUIRE_MESSAGE(r.value("ok", false), r.dump());
    return r["policy"];
}

// origin + two devices of east holding `fix` (8 MiB, mandatory); dev1 runs with `config`.
struct Holders {
    Swarm s;
    std::string file;
    Holders(TempDir& d, const std::string& config) : s(d) {
        s.start("origin", "origin", "core");
        s.start("dev1", "peer", "east", {"--start-delay", "0s", "--config", write_config(d, "dev1", config)});
        s.start("dev2", "peer", "east", {"--start-delay", "0s"});
        s.wait_connected({"dev1", "dev2"}, 1);
        file = s.publish("fix", 8 * 1024 * 1024 + 3, 51, /*mandatory=*/true);
        for (auto* n : {"dev1", "dev2"}) REQUIRE_MESSAGE(wait_for([&] { return complete(s.sock(n), "fix"); }, 30'000), n);
    }
    // A new device fetches fix by name; true when it completed with the right bytes.
    bool fetch_by(const std::string& name) {
        s.start(name, "peer", "east", {"--auto-fetch", "off"});
        s.wait_connected({name}, 2);
        auto r = ctl(s.sock(name), "add", {{"name", "fix"}});
        if (!r.value("ok", false)) return false;
        if (!wait_for([&] { return complete(s.sock(name), "fix"); }, 40'000)) return false;
        return slurp(s.d / (name + "/patches/fix-v1")) == slurp(file);
    }
};

}  // namespace

TEST_CASE("daemon policy: a metered or low-battery device serves no segment, a peer gets them from the other holders") {
    TempDir d("ps-policy-gate");
    Holders h(d, "[policy]\nmin_battery = 30\n");
    auto& s = h.s;
    CHECK(policy(s.sock("dev1"))["uploads"] == "allowed");

    auto p = policy(s.sock("dev1"), {{"metered", "yes"}});
    CHECK(p["uploads"] == "refused");
    CHECK(p["refused_because"] == "metered");
    std::uint64_t before = uploaded(s.sock("dev1"), "fix");
    REQUIRE(h.fetch_by("dev3"));
    CHECK(uploaded(s.sock("dev1"), "fix") == before);
    auto after = policy(s.sock("dev1"));
    CHECK(after["refusals"]["metered"] == 1);
    CHECK(after.value("requests_refused", 0) > 0);  // dev3 did ask it, and was turned away

    // Unmetered, but on battery below the minimum: still refused, for the battery.
    p = policy(s.sock("dev1"), {{"metered", "no"}, {"battery", "12"}, {"on_ac", "no"}});
    CHECK(p["refused_because"] == "battery");
    std::uint64_t refused = p.value("requests_refused", 0);
    REQUIRE(h.fetch_by("dev4"));
    CHECK(uploaded(s.sock("dev1"), "fix") == before);
    CHECK(policy(s.sock("dev1")).value("requests_refused", 0) > refused);

    // Plugged in: it serves again (only dev1 and the origin serve dev5 once the others are metered).
    for (auto* n : {"dev2", "dev3", "dev4"}) policy(s.sock(n), {{"metered", "yes"}});
    CHECK(policy(s.sock("dev1"), {{"on_ac", "yes"}})["uploads"] == "allowed");
    REQUIRE(h.fetch_by("dev5"));
    CHECK(uploaded(s.sock("dev1"), "fix") > before);

    // Bad values are refused naming them.
    CHECK(ctl(s.sock("dev1"), "policy", {{"battery", "150"}})["error"] ==
          "battery: '150' is not a percentage 0..100 or unknown");
    CHECK(ctl(s.sock("dev1"), "policy", {{"metered", "maybe"}})["error"] == "metered: 'maybe' is not yes or no");
    auto human = run_cli(d, {"policy", "--socket", s.sock("dev1")});
    CHECK(human.out.find("uploads allowed; battery 12%, on AC, not metered") != std::string::npos);
}

TEST_CASE("daemon policy: over its monthly upload cap, kept across restarts, a device stops serving") {
    TempDir d("ps-policy-cap");
    // This month's count, as a previous run left it: 9 MiB, over the 8 MiB cap.
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char month[32];
    std::snprintf(month, sizeof month, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    fs::create_directories(d / "dev1");
    std::ofstream(d / "dev1/upload-month") << "patchswarm-upload-month-v1\n" << month << " 9437184\n";
    Holders h(d, "[policy]\nmonthly_upload_cap = \"8M\"\n");
    auto& s = h.s;
    auto p = policy(s.sock("dev1"));
    CHECK(p["refused_because"] == "monthly_cap");
    CHECK(p.value("month_uploaded", 0) >= 9437184);
    std::uint64_t before = uploaded(s.sock("dev1"), "fix");
    REQUIRE(h.fetch_by("dev3"));
    CHECK(uploaded(s.sock("dev1"), "fix") == before);
    CHECK(policy(s.sock("dev1")).value("requests_refused", 0) > 0);

    // A higher cap on reload: it serves again, and what it serves is counted and saved.
    std::ofstream(d / "dev1.toml") << "[policy]\nmonthly_upload_cap = \"1G\"\n";
    REQUIRE(ctl(s.sock("dev1"), "reload").value("ok", false));
    CHECK(policy(s.sock("dev1"))["uploads"] == "allowed");
    policy(s.sock("dev2"), {{"metered", "yes"}});
    policy(s.sock("dev3"), {{"metered", "yes"}});
    REQUIRE(h.fetch_by("dev4"));
    std::uint64_t served = uploaded(s.sock("dev1"), "fix") - before;
    CHECK(served > 0);
    REQUIRE(wait_for([&] { return policy(s.sock("dev1")).value("month_uploaded", std::uint64_t{0}) >= 9437184 + served; }, 5'000));
    // Saved within 10 s; read back at start.
    bool saved = wait_for([&] {
        auto text = slurp(d / "dev1/upload-month");
        return text.find(month + std::string(" ") + std::to_string(9437184 + served)) != std::string::npos;
    }, 15'000);
    CHECK(saved);
}

TEST_CASE("daemon policy: within business hours the node's rates are the policy's, and reload lifts them") {
    TempDir d("ps-policy-hours");
    Swarm s(d);
    s.start("origin", "origin", "core");
    std::string cfg = write_config(d, "dev", "[limits]\nupload = \"1M\"\n[policy]\nbusiness_hours = \"0-24\"\n"
                                            "business_days = \"all\"\nbusiness_upload = \"200K\"\nbusiness_download = \"300K\"\n");
    s.start("dev", "peer", "east", {"--config", cfg});
    REQUIRE(wait_for([&] { return ctl(s.sock("dev"), "status")["node"].value("upload_limit", 0) == 200 * 1024; }, 5'000));
    auto n = ctl(s.sock("dev"), "status")["node"];
    CHECK(n.value("download_limit", 0) == 300 * 1024);
    CHECK(n["policy"]["business_hours"] == true);
    // Business hours gone: the configured limits are back.
    std::ofstream(cfg) << "[limits]\nupload = \"1M\"\n";
    REQUIRE(ctl(s.sock("dev"), "reload").value("ok", false));
    n = ctl(s.sock("dev"), "status")["node"];
    CHECK(n.value("upload_limit", 0) == 1024 * 1024);
    CHECK(n.value("download_limit", 1) == 0);
    CHECK(n["policy"]["business_hours"] == false);
}

TEST_CASE("daemon policy: below the free-disk minimum no new download starts, an urgent one does") {
    TempDir d("ps-policy-disk");
    Swarm s(d);
    s.start("origin", "origin", "core");
    std::string cfg = write_config(d, "dev", "[policy]\nmin_free_disk = \"1000000T\"\n");
    s.start("dev", "peer", "east", {"--config", cfg, "--start-delay", "0s", "--metrics", "127.0.0.1:0"});
    s.wait_connected({"dev"}, 1);
    auto mport = static_cast<std::uint16_t>(std::stoi(field(slurp(d / "dev.out"), "metrics").substr(10)));
    s.publish("plain", 1024 * 1024 + 1, 61, /*mandatory=*/false);
    auto r = ctl(s.sock("dev"), "add", {{"name", "plain"}});
    CHECK_FALSE(r.value("ok", true));
    CHECK(r.value("error", "").find("policy: the store's file system has ") == 0);
    CHECK(r.value("error", "").find("(policy.min_free_disk)") != std::string::npos);
    auto p = ctl(s.sock("dev"), "status")["node"]["policy"];
    CHECK(p.value("caching_refused", 0) == 1);
    CHECK(p.value("caching_refused_last", "").find("plain v1: ") == 0);
    auto metrics = http_get(mport, "GET /metrics HTTP/1.0\r\n\r\n");
    CHECK(sample(metrics, "patchswarm_policy_downloads_refused_total") == 1u);
    CHECK(sample(metrics, "patchswarm_policy_uploads_refused") == 0u);
    // An urgent patch is fetched all the same.
    s.publish("hot", 1024 * 1024 + 2, 62, false, true, 1, {"--urgent"});
    CHECK(wait_for([&] { return complete(s.sock("dev"), "hot"); }, 20'000));
    // Lifted on reload: the plain patch can be added.
    std::ofstream(cfg) << "[policy]\nmin_free_disk = \"1M\"\n";
    REQUIRE(ctl(s.sock("dev"), "reload").value("ok", false));
    CHECK(ctl(s.sock("dev"), "add", {{"name", "plain"}}).value("ok", false));
    CHECK(wait_for([&] { return complete(s.sock("dev"), "plain"); }, 20'000));
}
