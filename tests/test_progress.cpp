// `patchswarm fetch`'s progress (node/progress.hpp): the rate over a sliding
// window of bytes, the time left, the bar and the plain lines; then the real
// command with its output to a file (plain lines) and to a terminal (a pty:
// the bar redrawn with \r).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <thread>

#include "node/progress.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;
using node::ProgressView;

TEST_CASE("progress: the rate comes from bytes over the sliding window, whatever the segment size") {
    // Tiny segments (64 KiB every 50 ms) and huge ones (256 MiB every 10 s)
    // give the rate they carry; the segment count does not enter.
    struct Case {
        std::uint64_t seg, every_ms;
    };
    for (Case c : {Case{64 << 10, 50}, Case{1 << 20, 250}, Case{256ull << 20, 10'000}}) {
        node::RateWindow w(c.every_ms >= 10'000 ? 60'000 : 5'000);
        std::uint64_t t = 0, held = 0;
        for (int i = 0; i < 40; ++i, t += c.every_ms, held += c.seg) w.add(t, held);
        double expected = double(c.seg) * 1000.0 / double(c.every_ms);
        CHECK(w.rate() == doctest::Approx(expected).epsilon(0.01));
    }
    // The window forgets: after a fast start, a stall brings the rate to 0.
    node::RateWindow w(2'000);
    w.add(0, 0);
    w.add(1'000, 50 << 20);
    CHECK(w.rate() == doctest::Approx(50.0 * (1 << 20)));
    for (std::uint64_t t = 2'000; t <= 6'000; t += 500) w.add(t, 50 << 20);
    CHECK(w.rate() == 0);
    // One sample, or none: no rate.
    CHECK(node::RateWindow{}.rate() == 0);
    node::RateWindow one;
    one.add(10, 1000);
    CHECK(one.rate() == 0);
}

TEST_CASE("progress: the time left is remaining bytes over the rate, and nothing silly at zero rate") {
    CHECK(node::eta_seconds(0, 100 << 20, 10 << 20) == doctest::Approx(10.0));
    CHECK(node::eta_seconds(90 << 20, 100 << 20, 1 << 20) == doctest::Approx(10.0));
    CHECK(node::eta_seconds(100, 100, 0) == 0.0);             // complete: 0 even at no rate
    CHECK(node::eta_seconds(200, 100, 0) == 0.0);
    CHECK_FALSE(node::eta_seconds(0, 100, 0).has_value());   // no rate: no answer
    CHECK_FALSE(node::eta_seconds(0, 100, 0.2).has_value());
    CHECK_FALSE(node::eta_seconds(0, 100, -5).has_value());
    CHECK_FALSE(node::eta_seconds(0, 1ull << 60, 2).has_value());  // over 100 days
    CHECK(node::format_eta(std::nullopt) == "-");
    CHECK(node::format_eta(0.0) == "0:00");
    CHECK(node::format_eta(7.2) == "0:08");
    CHECK(node::format_eta(754) == "12:34");
    CHECK(node::format_eta(3723) == "1:02:03");
    CHECK(node::format_bytes(0) == "0 B");
    CHECK(node::format_bytes(1023) == "1023 B");
    CHECK(node::format_bytes(1536) == "1.5 KiB");
    CHECK(node::format_bytes(64.0 * (1 << 20)) == "64.0 MiB");
    CHECK(node::format_bytes(3.0 * (1ull << 50)) == "3.0 PiB");
}

TEST_CASE("progress: the bar and the plain line, from an empty start to completion") {
    ProgressView v{0, 64ull << 20, 0, "downloading"};
    CHECK(node::progress_bar(v, 10) == "[----------]   0.0%  0 B/64.0 MiB  0 B/s  ETA -  downloading");
    CHECK(node::progress_line(v) == "progress 0.0% 0 B of 64.0 MiB rate 0 B/s eta - state downloading");
    v = {24ull << 20, 64ull << 20, 8.0 * (1 << 20), "downloading"};
    CHECK(node::progress_bar(v, 8) == "[###-----]  37.5%  24.0 MiB/64.0 MiB  8.0 MiB/s  ETA 0:05  downloading");
    CHECK(node::progress_line(v) == "progress 37.5% 24.0 MiB of 64.0 MiB rate 8.0 MiB/s eta 0:05 state downloading");
    // One byte short is not 100% and not a full bar.
    v = {(1ull << 40) - 1, 1ull << 40, 1e6, "downloading"};
    CHECK(node::progress_bar(v, 4).rfind("[###-]  99.9%", 0) == 0);
    v = {1ull << 40, 1ull << 40, 0, "complete"};
    CHECK(node::progress_bar(v, 4) == "[####] 100.0%  1.0 TiB/1.0 TiB  0 B/s  ETA 0:00  complete");
    v = {0, 0, 0, "complete"};  // an empty patch is complete
    CHECK(node::progress_line(v) == "progress 100.0% 0 B of 0 B rate 0 B/s eta 0:00 state complete");
}

TEST_CASE("progress: plain lines come at the first sample, every 10%, every few seconds and on a change of state") {
    node::PlainPacer p(5'000, 10);
    CHECK(p.due(0, 0.0, "downloading"));
    CHECK_FALSE(p.due(100, 0.05, "downloading"));
    CHECK(p.due(200, 0.10, "downloading"));       // a 10% step
    CHECK_FALSE(p.due(300, 0.15, "downloading"));
    CHECK(p.due(5'200, 0.16, "downloading"));     // 5 s since the last line
    CHECK(p.due(5'300, 0.16, "paused"));          // a new state
    CHECK(p.due(5'400, 1.0, "complete"));
    // A huge jump (one huge segment) gives one line, not one per step.
    node::PlainPacer q;
    CHECK(q.due(0, 0.0, "downloading"));
    CHECK(q.due(10, 0.95, "downloading"));
    CHECK_FALSE(q.due(20, 0.97, "downloading"));
}

namespace {

// What a ProgressPrinter writes, through a memory stream.
struct Captured {
    char* buf = nullptr;
    std::size_t size = 0;
    std::FILE* f = ::open_memstream(&buf, &size);
    ~Captured() {
        if (f) std::fclose(f);
        std::free(buf);
    }
    std::string text() {
        std::fflush(f);
        return std::string(buf, size);
    }
    long redraws() {
        auto t = text();
        return std::count(t.begin(), t.end(), '\r');
    }
};

}  // namespace

TEST_CASE("progress: the terminal bar is redrawn at most every 250 ms, only when it changed, and at once when complete") {
    Captured out;
    const std::uint64_t total = 100ull << 20;
    node::ProgressPrinter p(out.f, /*terminal=*/true);
    p.update(0, 0, total, "downloading");
    p.update(300, 0, total, "downloading");  // nothing moved: the same bar, not drawn again
    p.update(600, 0, total, "downloading");
    CHECK(out.redraws() == 1);
    p.update(700, 10ull << 20, total, "downloading");  // 100 ms after the last redraw: waits
    CHECK(out.redraws() == 1);
    p.update(900, 20ull << 20, total, "downloading");
    CHECK(out.redraws() == 2);
    p.update(950, total, total, "complete");  // the end is never held back
    auto text = out.text();
    CHECK(out.redraws() == 3);
    CHECK(text.find("] 100.0%  100.0 MiB/100.0 MiB") != std::string::npos);
    CHECK(text.find('\n') == std::string::npos);
    p.finish();
    CHECK(out.text().back() == '\n');
}

TEST_CASE("progress: plain lines over a whole download: the first, one per 10%, the end") {
    Captured out;
    const std::uint64_t total = 1000;
    node::ProgressPrinter p(out.f, /*terminal=*/false);
    for (std::uint64_t i = 0; i <= 100; ++i)  // 1% every 40 ms: 4 s in all
        p.update(i * 40, i * total / 100, total, i == 100 ? "complete" : "downloading");
    p.finish();
    auto text = out.text();
    auto lines = std::count(text.begin(), text.end(), '\n');
    CHECK(lines == 11);  // 0%, 10%, ..., 90%, and 100% with the state complete
    CHECK(text.find("progress 100.0% 1000 B of 1000 B rate 250 B/s eta 0:00 state complete\n") != std::string::npos);
    CHECK(text.find('\r') == std::string::npos);
}

namespace {

struct Origin {
    TempDir& d;
    pid_t pid = -1;
    std::string dht;
    explicit Origin(TempDir& dir) : d(dir) {}
    ~Origin() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

// An operator key, a patch of `size` bytes in `segment` byte segments, and an
// origin serving it; returns the origin's DHT port.
void start_origin(Origin& o, std::size_t size, std::uint32_t segment) {
    TempDir& d = o.d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "op.secret", "--public", d / "op.public"}).code == 0);
    write_random_file(d / "patch.bin", size, 21);
    auto p = run_cli(d, {"publish", "--key", d / "op.secret", "--file", d / "patch.bin", "--name", "p", "--version", "1",
                         "--segment-size", std::to_string(segment), "--out", d / "patch.manifest"});
    REQUIRE_MESSAGE(p.code == 0, p.err);
    o.pid = spawn_cli({"node", "--data", d / "origin", "--domain", "core", "--role", "origin", "--trust", d / "op.public",
                       "--serve", d / "patch.manifest=" + d / "patch.bin"},
                      d / "origin.out", d / "origin.err");
    for (int i = 0; i < 500 && slurp(d / "origin.out").find("ready") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto line = slurp(d / "origin.out");
    REQUIRE_MESSAGE(line.find(" dht=") != std::string::npos, slurp(d / "origin.err"));
    o.dht = line.substr(line.find(" dht=") + 5);
    o.dht = o.dht.substr(0, o.dht.find_first_of(" \n"));
}

std::vector<std::string> fetch_args(const TempDir& d, const Origin& o) {
    return {"fetch", "--data", d / "dev", "--domain", "d1", "--trust", d / "op.public", "--bootstrap",
            "127.0.0.1:" + o.dht, "--manifest", d / "patch.manifest", "--out", d / "out.bin", "--seed-ratio", "0",
            "--timeout", "60", "--download-limit", "1M"};
}

}  // namespace

TEST_CASE("progress: `patchswarm fetch` with its output in a file prints plain progress lines") {
    TempDir d("ps-progress");
    Origin o(d);
    start_origin(o, 3 << 20, 64 << 10);  // 48 segments of 64 KiB, about 3 s at 1 MiB/s
    auto r = run_cli(d, fetch_args(d, o));
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK(slurp(d / "out.bin") == slurp(d / "patch.bin"));
    CHECK(r.out.find('\r') == std::string::npos);
    std::regex line_re(R"(progress (\d+\.\d)% (\S+ \S+) of 3\.0 MiB rate (\S+ \S+)/s eta (\S+) state (\w+))");
    std::istringstream in(r.out);
    std::string line;
    std::vector<double> percents;
    std::string last_state;
    bool saw_rate = false;
    while (std::getline(in, line)) {
        if (line.rfind("progress ", 0) != 0) continue;
        std::smatch m;
        REQUIRE_MESSAGE(std::regex_match(line, m, line_re), line);
        percents.push_back(std::stod(m[1]));
        last_state = m[5];
        saw_rate = saw_rate || (m[3] != "0 B" && m[4] != "-");
    }
    CHECK(percents.size() >= 3);     // the first sample, 10% steps, the end
    CHECK(percents.size() <= 20);    // not one per segment or per tick
    CHECK(std::is_sorted(percents.begin(), percents.end()));
    CHECK(percents.back() == 100.0);
    CHECK(last_state == "complete");
    CHECK(saw_rate);  // a rate and a time left while it ran
    CHECK(r.out.find("complete " + d / "out.bin") != std::string::npos);
}

TEST_CASE("progress: `patchswarm fetch` on a terminal redraws one bar in place") {
    TempDir d("ps-progress-tty");
    Origin o(d);
    start_origin(o, 2 << 20, 1 << 20);  // 2 segments of 1 MiB, about 2 s at 1 MiB/s
    int master = -1;
    pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int e = ::open((d / "tty.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e >= 0) ::dup2(e, 2);
        auto args = fetch_args(d, o);
        args.insert(args.begin(), PS_CLI);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    std::string out;
    char buf[4096];
    for (;;) {
        auto n = ::read(master, buf, sizeof buf);
        if (n > 0) out.append(buf, static_cast<std::size_t>(n));
        else if (n < 0 && errno == EINTR) continue;
        else break;  // EIO once the child closed the terminal
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    ::close(master);
    INFO(out << slurp(d / "tty.err"));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(slurp(d / "out.bin") == slurp(d / "patch.bin"));
    CHECK(out.find("progress ") == std::string::npos);  // no plain lines on a terminal
    auto redraws = std::count(out.begin(), out.end(), '\r');
    CHECK(redraws >= 2);  // drawn, then redrawn in place (the pty turns \n into \r\n too)
    CHECK(out.find("\r[") != std::string::npos);
    CHECK(out.find("] 100.0%  2.0 MiB/2.0 MiB") != std::string::npos);
    CHECK(out.find("ETA ") != std::string::npos);
    CHECK(out.find("complete " + d / "out.bin") != std::string::npos);
}
