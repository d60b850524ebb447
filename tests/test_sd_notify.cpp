// systemd's notification protocol (transfer/sd_notify.hpp) as the packaged
// unit (Type=notify, WatchdogSec=) uses it: the test plays systemd with a
// datagram socket of its own and reads what a real `patchswarm node` sends.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>

#include "daemon_support.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

// The service manager's end: a datagram socket at `name` ("@x" = abstract).
struct FakeSystemd {
    int fd = -1;
    std::vector<std::string> got;

    explicit FakeSystemd(const std::string& name) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        REQUIRE(name.size() < sizeof a.sun_path);
        std::memcpy(a.sun_path, name.data(), name.size());
        if (name[0] == '@') a.sun_path[0] = '\0';
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
        timeval tv{0, 100'000};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~FakeSystemd() { ::close(fd); }
    // Reads for `ms`, or until a message containing `until` arrives (when set).
    void read_for(int ms, const std::string& until = "") {
        auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        char buf[4096];
        while (std::chrono::steady_clock::now() < end) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) continue;
            got.emplace_back(buf, static_cast<std::size_t>(n));
            if (!until.empty() && got.back().find(until) != std::string::npos) return;
        }
    }
    int count(const std::string& what) const {
        int n = 0;
        for (auto& m : got) n += m.find(what) != std::string::npos;
        return n;
    }
};

// Starts an origin with these variables set in its environment only.
Proc start_node(const TempDir& d, const Patch& p, const std::map<std::string, std::string>& env) {
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    auto proc = spawn(d, "node", {"node", "--data", d / "node", "--domain", "core", "--role", "origin", "--trust", p.pub,
                                  "--serve", p.manifest + "=" + p.file});
    for (auto& [k, v] : env) ::unsetenv(k.c_str());
    return proc;
}

}  // namespace

TEST_CASE("systemd: under NOTIFY_SOCKET a node sends READY with a STATUS line, WATCHDOG at half WATCHDOG_USEC, "
          "and STOPPING on SIGTERM") {
    TempDir d("ps-notify");
    auto p = make_patch(d, 1024 * 1024, 3);
    FakeSystemd sd(d / "notify.sock");
    auto node = start_node(d, p, {{"NOTIFY_SOCKET", d / "notify.sock"}, {"WATCHDOG_USEC", "1000000"}});
    ready(node);
    sd.read_for(5'000, "READY=1");
    REQUIRE_MESSAGE(sd.count("READY=1") == 1, slurp(node.err));
    // READY comes with what `systemctl status` shows: the DHT state and the patches.
    CHECK(sd.got.back().find("\nSTATUS=dht waiting; 0 peers; serving 1") != std::string::npos);
    sd.got.clear();
    sd.read_for(2'600);
    const int pings = sd.count("WATCHDOG=1");
    INFO(pings << " watchdog pings in 2.6 s");
    CHECK(pings >= 3);  // one every 500 ms
    CHECK(pings <= 7);
    ::kill(node.pid, SIGTERM);
    sd.read_for(5'000, "STOPPING=1");
    CHECK(sd.count("STOPPING=1") == 1);
    CHECK(finish(node).code == 0);
}

TEST_CASE("systemd: an abstract NOTIFY_SOCKET works, and a WATCHDOG_PID of another process means no watchdog pings") {
    TempDir d("ps-notify-abs");
    auto p = make_patch(d, 1024 * 1024, 4);
    const std::string name = "@ps-notify-test-" + std::to_string(::getpid());
    FakeSystemd sd(name);
    auto node = start_node(d, p, {{"NOTIFY_SOCKET", name}, {"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "1"}});
    ready(node);
    sd.read_for(5'000, "READY=1");
    REQUIRE(sd.count("READY=1") == 1);
    sd.read_for(1'500);
    CHECK(sd.count("WATCHDOG=1") == 0);  // the watchdog is for pid 1, not this node
    ::kill(node.pid, SIGTERM);
    CHECK(finish(node).code == 0);
}

TEST_CASE("systemd: a node reloaded with SIGHUP says RELOADING with the monotonic time, then READY again") {
    TempDir d("ps-notify-hup");
    auto p = make_patch(d, 1024 * 1024, 5);
    FakeSystemd sd(d / "notify.sock");
    auto node = start_node(d, p, {{"NOTIFY_SOCKET", d / "notify.sock"}});
    ready(node);
    sd.read_for(5'000, "READY=1");
    REQUIRE(sd.count("READY=1") == 1);
    ::kill(node.pid, SIGHUP);
    sd.read_for(5'000, "READY=1");
    REQUIRE(sd.count("RELOADING=1") == 1);
    CHECK(sd.count("MONOTONIC_USEC=") == 1);
    CHECK(sd.count("READY=1") == 2);
    ::kill(node.pid, SIGTERM);
    CHECK(finish(node).code == 0);
}
