// The node's settings: TOML config file + command-line overrides. Every wrong
// setting must stop start-up with a message naming the key and the problem.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "node/config.hpp"
#include "node/log.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

const char* kGood = R"(
[node]
data = "/var/lib/patchswarm"
role = "peer"
domain = "east"
trust = "/etc/patchswarm/operator.public"
listen = "0.0.0.0:7400"
max_peers = 40

[dht]
port = 7401
bootstrap = ["10.0.0.1:4222", "[fd00::1]:4222"]

[limits]
upload = "2M"
download = 1048576
upload_slots = 6
quota = "20G"

[control]
socket = "/run/patchswarm/control.sock"
metrics = "127.0.0.1:9464"

[log]
level = "info"

[device]
on_complete = ["/bin/true", "--quiet"]
auto_fetch = false
start_delay = "5m"
patches = "/var/lib/patchswarm/patches"

[cache]
prefetch = false
busy = 90

[[serve]]
manifest = "/srv/fix.manifest"
file = "/srv/fix.bin"
)";

// Parses `text` as a file named cfg.toml, then validates it; returns the error.
std::string problem(const std::string& text) {
    auto c = node::parse_config(text, "cfg.toml");
    if (!c) return c.error();
    auto st = node::validate_config(*c);
    return st ? std::string() : st.error();
}

std::string minimal(const std::string& extra) {
    return "[node]\ndata = \"/d\"\nrole = \"peer\"\ndomain = \"east\"\ntrust = \"/t\"\n" + extra;
}

}  // namespace

TEST_CASE("config: a complete file parses into every setting") {
    auto c = node::parse_config(kGood, "good.toml");
    REQUIRE_MESSAGE(c, c.error());
    CHECK(node::validate_config(*c));
    CHECK(c->data_dir == "/var/lib/patchswarm");
    CHECK(c->role == "peer");
    CHECK(c->domain == "east");
    CHECK(c->listen == "0.0.0.0:7400");
    CHECK(c->max_peers == 40);
    CHECK(c->dht_port == 7401);
    CHECK(c->bootstrap == std::vector<std::string>{"10.0.0.1:4222", "[fd00::1]:4222"});
    CHECK(c->upload_limit == 2u << 20);
    CHECK(c->download_limit == 1048576);
    CHECK(c->upload_slots == 6);
    CHECK(c->quota == std::uint64_t{20} << 30);
    CHECK(c->control_path() == "/run/patchswarm/control.sock");
    CHECK(c->metrics == "127.0.0.1:9464");
    CHECK(c->log_level == "info");
    CHECK(c->on_complete == std::vector<std::string>{"/bin/true", "--quiet"});
    CHECK_FALSE(c->auto_fetch);
    CHECK(c->start_delay_ms == 300'000);
    CHECK(c->patches_dir == "/var/lib/patchswarm/patches");
    CHECK_FALSE(c->prefetch);
    CHECK(c->cache_busy_ms == 90'000);
    REQUIRE(c->serve.size() == 1);
    CHECK(c->serve[0].file == "/srv/fix.bin");
    // Defaults: the control socket lives in the data folder.
    auto m = node::parse_config(minimal(""), "m.toml");
    REQUIRE(m);
    CHECK(m->control_path() == "/d/run/control.sock");
    CHECK(m->log_level == "warn");  // quiet by default
    CHECK(m->auto_fetch);
    CHECK(m->start_delay_ms == 30'000);
    CHECK(m->prefetch);
    CHECK(m->cache_busy_ms == 60'000);
    CHECK(m->freshness_window_ms == 0);  // freshness off
    auto f = node::parse_config(minimal("freshness_window = \"5m\"\n"), "f.toml");
    REQUIRE(f);
    CHECK(f->freshness_window_ms == 300'000);
    CHECK(node::validate_config(*f));
    // Durations: milliseconds, seconds (bare or "s"), minutes, hours.
    CHECK(node::parse_duration_ms("250ms").value() == 250);
    CHECK(node::parse_duration_ms("45").value() == 45'000);
    CHECK(node::parse_duration_ms("2h").value() == 7'200'000);
    CHECK_FALSE(node::parse_duration_ms("1.5s"));
    CHECK_FALSE(node::parse_duration_ms("8d"));
    CHECK_FALSE(node::parse_duration_ms("999h"));  // over a week
}

TEST_CASE("config: each wrong setting names its key and the problem") {
    struct Case {
        std::string text, expect;
    };
    std::vector<Case> cases{
        {minimal("[limits]\nuplod = 5\n"), "cfg.toml: limits.uplod: unknown key"},
        {minimal("[limits]\nupload = \"10X\"\n"), "cfg.toml: limits.upload: '10X' is not a rate"},
        {minimal("[limits]\ndownload = -1\n"), "limits.download: must not be negative"},
        {minimal("[limits]\nquota = \"lots\"\n"), "limits.quota: 'lots' is not a size"},
        {minimal("[limits]\nupload_slots = 5000\n"), "limits.upload_slots: 5000 is out of range 0..1024"},
        {"[node]\nmax_peers = \"many\"\n", "node.max_peers: expected an integer, got a string"},
        {minimal("[dht]\nport = 70000\n"), "dht.port: 70000 is out of range 0..65535"},
        {minimal("[dht]\nbootstrap = \"10.0.0.1:4222\"\n"), "dht.bootstrap: expected an array of strings, got a string"},
        {minimal("[dht]\nbootstrap = [\"nohost\"]\n"), "dht.bootstrap: 'nohost' is not HOST:PORT"},
        {"node = 5\n", "cfg.toml: node: expected a table, got an integer"},
        {"[node]\ndata = \"/d\"\ndomain = \"east\"\ntrust = \"/t\"\nrole = \"seed\"\n",
         "node.role: must be origin, super or peer, not 'seed'"},
        {"[node]\ndata = \"/d\"\nrole = \"peer\"\ntrust = \"/t\"\n", "node.domain: missing"},
        {"[node]\nrole = \"peer\"\ndomain = \"east\"\ntrust = \"/t\"\n", "node.data: missing"},
        {"[node]\ndata = \"/d\"\nrole = \"peer\"\ndomain = \"East Side\"\ntrust = \"/t\"\n",
         "node.domain: 'East Side' is not 1-63 characters"},
        {minimal("listen = \"localhost\"\n"), "node.listen: 'localhost' has no :port"},
        {minimal("freshness_window = \"soon\"\n"), "node.freshness_window: 'soon' is not a duration"},
        {minimal("freshness_window = \"30s\"\n"), "node.freshness_window: must be 0 (off) or at least 120s"},
        {minimal("[log]\nlevel = \"chatty\"\n"), "log.level: 'chatty' is not a log level"},
        {minimal("[control]\nmetrics = \"127.0.0.1\"\n"), "control.metrics: '127.0.0.1' has no :port"},
        {minimal("[control]\nsocket = \"/" + std::string(120, 's') + "\"\n"), "control.socket: the control socket path"},
        {minimal("[device]\non_complete = \"install.sh\"\n"), "device.on_complete: the program must be an absolute path"},
        {minimal("[device]\non_complete = \"/nonexistent/install\"\n"), "device.on_complete: /nonexistent/install is not an executable"},
        {minimal("[device]\non_complete = [\"/bin/true\", 7]\n"), "device.on_complete[1]: expected a string, got an integer"},
        {minimal("[device]\nauto_fetch = \"yes\"\n"), "device.auto_fetch: expected true or false, got a string"},
        {minimal("[device]\nstart_delay = \"soon\"\n"), "device.start_delay: 'soon' is not a duration such as 500ms, 30s"},
        {minimal("[device]\nstart_delay = -3\n"), "device.start_delay: -3 seconds is out of range 0..604800"},
        {minimal("[device]\npatches = \"patches\"\n"), "device.patches: must be an absolute path, not 'patches'"},
        {minimal("[cache]\nprefetch = 1\n"), "cache.prefetch: expected true or false, got an integer"},
        {minimal("[cache]\nbusy = \"30 s\"\n"), "cache.busy: '30 s' is not a duration"},
        {minimal("[cache]\nsize = 5\n"), "cache.size: unknown key"},
        {minimal("[[serve]]\nmanifest = \"a\"\n"), "serve[0].file: missing"},
        {minimal("[[serve]]\nmanifest = \"a\"\nfile = \"b\"\nextra = 1\n"), "serve[0].extra: unknown key"},
        {"[node\nrole = 1\n", "cfg.toml:1:"},  // TOML syntax: file, line and column
    };
    for (auto& c : cases) {
        auto got = problem(c.text);
        INFO("config:\n" << c.text);
        CHECK_MESSAGE(got.find(c.expect) != std::string::npos, "got: " << got << "\nexpected: " << c.expect);
    }
}

TEST_CASE("config: hard limits on the file and command-line keys are named as options") {
    std::string huge = minimal("# " + std::string(node::kMaxConfigBytes, 'x') + "\n");
    CHECK(problem(huge).find("larger than the") != std::string::npos);
    std::string many = "[dht]\nbootstrap = [";
    for (int i = 0; i < 100; ++i) many += "\"10.0.0.1:1\",";
    many += "]\n";
    CHECK(problem(many).find("dht.bootstrap: has 100 entries, at most 64") != std::string::npos);
    CHECK(problem(minimal("[node]\n")).find("cfg.toml:") == 0);  // a duplicate table is a TOML error

    // A value from the command line is named as its option, without the file.
    auto c = node::parse_config(minimal(""), "cfg.toml");
    REQUIRE(c);
    c->role = "seed";
    c->cli["node.role"] = "--role";
    auto st = node::validate_config(*c);
    REQUIRE(!st);
    CHECK(st.error() == "--role: must be origin, super or peer, not 'seed'");

    CHECK(node::parse_size("64K").value() == 65536);
    CHECK(node::parse_size("3T").value() == std::uint64_t{3} << 40);
    CHECK(!node::parse_size("99999999999999G"));
    CHECK(!node::parse_size(""));
    CHECK(!node::parse_size("1.5M"));
}

TEST_CASE("config: `patchswarm node --config` stops at a wrong setting, naming the file, key and problem") {
    TempDir d("ps-config");
    std::ofstream(d / "bad.toml") << "[node]\ndata = \"" << d / "data" << "\"\nrole = \"peer\"\ndomain = \"east\"\n"
                                  << "trust = \"" << d / "op.public" << "\"\n[limits]\ndownload = \"fast\"\n";
    auto r = run_cli(d, {"node", "--config", d / "bad.toml"});
    CHECK(r.code == 2);
    CHECK_MESSAGE(r.err.find("bad.toml: limits.download: 'fast' is not a rate") != std::string::npos, r.err);
    // The command line overrides the file, and its errors name the option.
    std::ofstream(d / "good.toml") << "[node]\ndata = \"" << d / "data" << "\"\nrole = \"peer\"\ndomain = \"east\"\n"
                                   << "trust = \"" << d / "op.public" << "\"\n";
    auto r2 = run_cli(d, {"node", "--config", d / "good.toml", "--role", "boss"});
    CHECK(r2.code == 2);
    CHECK_MESSAGE(r2.err.find("--role: must be origin, super or peer, not 'boss'") != std::string::npos, r2.err);
    auto r4 = run_cli(d, {"node", "--config", d / "good.toml", "--auto-fetch", "maybe"});
    CHECK(r4.code == 2);
    CHECK_MESSAGE(r4.err.find("--auto-fetch: must be on or off, not 'maybe'") != std::string::npos, r4.err);
    auto r5 = run_cli(d, {"node", "--config", d / "good.toml", "--start-delay", "later"});
    CHECK(r5.code == 2);
    CHECK_MESSAGE(r5.err.find("--start-delay: 'later' is not a duration") != std::string::npos, r5.err);
    auto r6 = run_cli(d, {"node", "--config", d / "good.toml", "--freshness-window", "60s"});
    CHECK(r6.code == 2);
    CHECK_MESSAGE(r6.err.find("--freshness-window: must be 0 (off) or at least 120s") != std::string::npos, r6.err);
    // Without a config file, missing settings are named as options.
    auto r3 = run_cli(d, {"node", "--data", d / "data", "--role", "peer", "--trust", d / "op.public"});
    CHECK(r3.code == 2);
    CHECK_MESSAGE(r3.err.find("--domain: missing") != std::string::npos, r3.err);
}

TEST_CASE("log: key=value lines, quoted when needed, quiet below the level") {
    using namespace ps::log;
    CHECK(format(Level::Info, "download_complete", {{"id", "3fa2"}, {"secs", 4.5}, {"n", 7}, {"ok", true}}) ==
          "level=info event=download_complete id=3fa2 secs=4.500 n=7 ok=true");
    CHECK(format(Level::Warn, "x", {{"reason", "has spaces \"and\" quotes\n"}}) ==
          "level=warn event=x reason=\"has spaces \\\"and\\\" quotes\\n\"");
    CHECK(format(Level::Error, "x", {{"empty", ""}}) == "level=error event=x empty=\"\"");
    auto before = level();
    CHECK(before == Level::Warn);  // the default: quiet
    CHECK(!enabled(Level::Info));
    set_level(Level::Debug);
    CHECK(enabled(Level::Info));
    set_level(before);
    CHECK(parse_level("warning").value() == Level::Warn);
    CHECK(!parse_level("loud"));
}

TEST_CASE("config: the packaged example config parses and validates") {
    auto c = node::load_config(std::string(PS_SOURCE_DIR) + "/packaging/patchswarm.toml");
    REQUIRE_MESSAGE(c, c.error());
    CHECK(node::validate_config(*c));
    CHECK(c->role == "peer");
    CHECK(c->control_path() == "/run/patchswarm/control.sock");
    CHECK(c->quota == std::uint64_t{4} << 30);
    // The unit starts the node with that file and reloads with SIGHUP.
    auto unit = slurp(std::string(PS_SOURCE_DIR) + "/packaging/patchswarm.service");
    CHECK(unit.find("ExecStart=/usr/bin/patchswarm node --config /etc/patchswarm/patchswarm.toml") != std::string::npos);
    CHECK(unit.find("ExecReload=/bin/kill -HUP $MAINPID") != std::string::npos);
    CHECK(unit.find("RuntimeDirectoryMode=0700") != std::string::npos);
}

TEST_CASE("log: lines carry syslog priorities, and no timestamp, when stderr is the journal's stream") {
    using namespace ps::log;
    TempDir d("ps-journal");
    std::string path = d / "stream";
    { std::ofstream(path) << ""; }
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    auto id = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    CHECK(is_journal_stream(id.c_str(), fd));
    CHECK_FALSE(is_journal_stream(nullptr, fd));
    CHECK_FALSE(is_journal_stream((std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), fd));
    CHECK_FALSE(is_journal_stream((id + "x").c_str(), fd));
    CHECK_FALSE(is_journal_stream("garbage", fd));
    ::close(fd);
    CHECK(syslog_priority(Level::Error) == 3);
    CHECK(syslog_priority(Level::Warn) == 4);
    CHECK(syslog_priority(Level::Info) == 6);
    CHECK(syslog_priority(Level::Debug) == 7);

    // The daemon itself, its stderr on a file named by JOURNAL_STREAM, and again without.
    auto k = run_cli(d, {"keygen", "--secret", d / "op.secret", "--public", d / "op.public"});
    REQUIRE_MESSAGE(k.code == 0, k.err);
    auto run = [&](const std::string& file, bool journal) {
        std::string cmd = "cd '" + d.path.string() + "' && : > " + file + " && " +
                          (journal ? "JOURNAL_STREAM=$(stat -c %d:%i " + file + ") " : std::string("")) +
                          "timeout -s TERM 2 '" PS_CLI "' node --data data-" + file +
                          " --domain east --role peer --trust op.public --listen 127.0.0.1:0 --log-level info"
                          " >/dev/null 2>>" + file;
        CHECK(std::system(cmd.c_str()) != -1);
        std::ifstream in(d / file);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    auto j = run("journal.log", true);
    CHECK_MESSAGE(j.rfind("<6>level=info event=", 0) == 0, j);  // priority first, no timestamp
    CHECK_MESSAGE(j.find("\n<6>level=info event=stopped") != std::string::npos, j);
    auto plain = run("plain.log", false);
    CHECK_MESSAGE(plain.find("Z level=info event=started") != std::string::npos, plain);
    CHECK_MESSAGE(plain.find("<6>") == std::string::npos, plain);
}
