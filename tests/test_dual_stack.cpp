// Listening on "::" (issue 16, item 3): one node serves IPv4 and IPv6 at once,
// transfer socket and DHT alike. Separate processes, real OpenDHT nodes, on
// 127.0.0.1 and ::1; skipped, saying so, where the machine has no IPv6 loopback.
#include <doctest/doctest.h>

#include <fstream>

#include "daemon_support.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

TEST_CASE("dual stack: an origin listening on [::] is joined over IPv4 and IPv6 and serves devices of both") {
    if (!have_ipv6_loopback()) {
        MESSAGE("skipped: this machine cannot bind ::1 (no IPv6 loopback)");
        return;
    }
    TempDir d("ps-dual");
    auto p = make_patch(d, 2 * 1024 * 1024 + 5, 61);
    // Records must name an address devices can dial: here ::1 (0.0.0.0 and :: are refused).
    {
        std::ofstream cfg(d / "origin.toml");
        // No LAN discovery: this test runs in the host's own network, whose LAN it must not multicast to.
        cfg << "[node]\nlisten = \"[::]:0\"\nadvertise = \"::1\"\n[dht]\nlan_discovery = \"off\"\n";
    }
    auto origin = spawn(d, "origin", {"node", "--config", d / "origin.toml", "--data", d / "origin", "--domain", "core",
                                      "--role", "origin", "--trust", p.pub, "--serve", p.manifest + "=" + p.file,
                                      "--log-level", "info"});
    auto line = ready(origin);
    CHECK(line.find(" listen=:::") != std::string::npos);
    const std::string dht = field(line, "dht");
    auto st = ctl(d / "origin/run/control.sock", "status")["node"];
    const std::string port = std::to_string(st.value("listen_port", 0));

    // Its transfer port takes both families (the control client is not needed for that).
    for (auto* host : {"127.0.0.1", "::1"}) {
        int fd = ::socket(std::string(host) == "::1" ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_storage ss{};
        socklen_t len = 0;
        if (std::string(host) == "::1") {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_loopback;
            a->sin6_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a->sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
            len = sizeof *a;
        }
        CHECK_MESSAGE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0, host);
        ::close(fd);
    }

    // One device joins the origin's DHT over IPv4, the other over IPv6 only.
    struct Dev {
        const char *name, *listen, *bootstrap_host;
    };
    std::vector<Proc> devs;
    for (auto dv : {Dev{"v4", "127.0.0.1:0", "127.0.0.1:"}, Dev{"v6", "[::1]:0", "[::1]:"}})
        devs.push_back(spawn(d, dv.name, {"fetch", "--data", d / dv.name, "--domain", "d1", "--trust", p.pub,
                                          "--listen", dv.listen, "--bootstrap", std::string(dv.bootstrap_host) + dht,
                                          "--manifest", p.manifest, "--out", d / (std::string(dv.name) + ".bin"),
                                          "--seed-seconds", "0", "--timeout", "60"}));
    for (auto& dv : devs) {
        auto r = finish(dv);
        INFO(r.err);
        CHECK(r.code == 0);
    }
    CHECK(slurp(d / "v4.bin") == slurp(p.file));
    CHECK(slurp(d / "v6.bin") == slurp(p.file));
    // Both came to the origin's DHT node: it knows nodes of each family.
    CHECK(wait_for([&] { return ctl(d / "origin/run/control.sock", "status")["node"].value("dht_nodes", 0) >= 2; }, 20'000));
}
