// The network commands as separate processes, the way devices and scripts run
// them: crash safety of a download (SIGKILL, restart, resume).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <thread>

#include "core/bitfield.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

// Waits until `path` contains `needle` (a line a process prints); false on timeout.
bool wait_for_text(const std::string& path, const std::string& needle, int ms) {
    for (int i = 0; i < ms / 20; ++i) {
        if (slurp(path).find(needle) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

std::uint32_t held_count(const std::string& have_path, std::uint32_t segments) {
    auto bytes = slurp(have_path);
    auto bf = Bitfield::from_bytes(as_bytes(bytes), segments);
    return bf ? bf->count() : 0;
}

}  // namespace

TEST_CASE("cli: a download killed with SIGKILL resumes without fetching verified segments again, and repairs a corrupted one") {
    TempDir d("ps-kill");
    auto k = run_cli(d, {"keygen", "--secret", d / "op.secret", "--public", d / "op.public"});
    REQUIRE_MESSAGE(k.code == 0, k.err);
    write_random_file(d / "patch.bin", 16 << 20, 5);  // 16 segments
    auto p = run_cli(d, {"publish", "--key", d / "op.secret", "--file", d / "patch.bin", "--name", "p", "--version", "1",
                         "--out", d / "patch.manifest"});
    REQUIRE_MESSAGE(p.code == 0, p.err);

    pid_t origin = spawn_cli({"node", "--data", d / "origin", "--domain", "core", "--role", "origin", "--trust",
                              d / "op.public", "--serve", d / "patch.manifest=" + d / "patch.bin"},
                             d / "origin.out", d / "origin.err");
    REQUIRE(wait_for_text(d / "origin.out", "ready", 10'000));
    auto line = slurp(d / "origin.out");
    auto dht = line.substr(line.find(" dht=") + 5);
    dht = dht.substr(0, dht.find(' '));

    std::vector<std::string> fetch{"fetch", "--data", d / "dev", "--domain", "d1", "--trust", d / "op.public",
                                   "--bootstrap", "127.0.0.1:" + dht, "--manifest", d / "patch.manifest", "--out",
                                   d / "out.bin", "--seed-ratio", "0", "--timeout", "60", "--stats-json", d / "stats.json"};
    auto slow = fetch;
    slow.insert(slow.end(), {"--download-limit", "4M"});  // 4 s for the whole patch
    pid_t dev = spawn_cli(slow, d / "dev1.out", d / "dev1.err");
    // Find the download folder, then kill the device part-way through.
    std::string have;
    for (int i = 0; i < 500 && have.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::error_code ec;
        for (auto& e : fs::directory_iterator(d / "dev", ec))
            if (e.is_directory() && fs::exists(e.path() / "have")) have = (e.path() / "have").string();
    }
    REQUIRE(!have.empty());
    std::uint32_t before = 0;
    for (int i = 0; i < 500 && before < 4; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        before = held_count(have, 16);
    }
    ::kill(dev, SIGKILL);
    auto r1 = wait_cli(dev, d / "dev1.out", d / "dev1.err");
    CHECK(r1.code == 128 + SIGKILL);
    before = held_count(have, 16);
    MESSAGE("killed with " << before << " of 16 segments held");
    REQUIRE(before >= 4);
    REQUIRE(before < 16);

    // Every segment marked held verifies (write, fsync, then mark). Corrupt one
    // of them on disk: the restart must notice and fetch it again.
    auto data = have.substr(0, have.size() - 4) + "data";
    auto marks = Bitfield::from_bytes(as_bytes(slurp(have)), 16);
    REQUIRE(marks);
    std::uint32_t victim = 0;
    while (!marks->test(victim)) ++victim;
    flip_byte(data, std::uint64_t{victim} * (1 << 20) + 1000);

    auto r2 = wait_cli(spawn_cli(fetch, d / "dev2.out", d / "dev2.err"), d / "dev2.out", d / "dev2.err");
    CHECK_MESSAGE(r2.code == 0, r2.err);
    CHECK(slurp(d / "out.bin") == slurp(d / "patch.bin"));
    auto stats = slurp(d / "stats.json");
    // The restart downloaded exactly the segments that were not held and verified.
    auto expect = std::to_string(std::uint64_t{16 - before + 1} << 20);
    CHECK_MESSAGE(stats.find("\"bytes_downloaded\": " + expect) != std::string::npos, stats);

    ::kill(origin, SIGTERM);
    auto ro = wait_cli(origin, d / "origin.out", d / "origin.err");
    CHECK(ro.code == 0);
}
