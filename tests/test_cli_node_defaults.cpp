// What the packaged default config relies on (packaging/patchswarm.toml): a
// node listening on 0.0.0.0 finds an address to advertise or says loudly that
// it has none, and a missing operator key is a wrong setting (status 2, which
// the systemd unit does not restart on).
#include <doctest/doctest.h>

#include "daemon_support.hpp"

using namespace ps::test;

TEST_CASE("cli: a node whose node.trust file does not exist exits 2 and names the setting") {
    TempDir d("ps-defaults");
    auto r = run_cli(d, {"node", "--data", d / "data", "--domain", "east", "--role", "peer", "--trust",
                         d / "operator.public"});
    CHECK(r.code == 2);
    CHECK(r.err.find("--trust: " + d / "operator.public" + " does not exist") != std::string::npos);
}

TEST_CASE("cli: a node listening on 0.0.0.0 advertises an interface's address, or warns in its log and status") {
    TempDir d("ps-defaults");
    auto k = run_cli(d, {"keygen", "--secret", d / "op.secret", "--public", d / "op.public"});
    REQUIRE_MESSAGE(k.code == 0, k.err);
    auto node = spawn(d, "node", {"node", "--data", d / "data", "--domain", "east", "--role", "peer", "--trust",
                                  d / "op.public", "--listen", "0.0.0.0:0", "--log-level", "info",
                                  "--lan-discovery", "off"});  // the host's own network: no multicast to its LAN
    auto socket = field(ready(node), "control");
    auto s = ctl(socket, "status");
    REQUIRE(s.value("ok", false));
    auto advertise = s["node"].value("advertise", "");
    auto warnings = s["node"]["warnings"];
    auto shown = run_cli(d, {"status", "--socket", socket});
    REQUIRE(shown.code == 0);
    MESSAGE("advertised address: " << advertise);
    if (advertise == "0.0.0.0") {
        // No interface with a global address here: the node must say so.
        REQUIRE(warnings.size() == 1);
        CHECK(warnings[0].get<std::string>().find("set node.advertise") != std::string::npos);
        CHECK(slurp(node.err).find("event=no_advertise_address") != std::string::npos);
        CHECK(shown.out.find("warning: no address to advertise") != std::string::npos);
    } else {
        CHECK(warnings.empty());
        CHECK(advertise.rfind("127.", 0) != 0);
        CHECK(slurp(node.err).find("event=advertise_detected host=" + advertise) != std::string::npos);
        CHECK(shown.out.find("warning:") == std::string::npos);
    }
    ::kill(node.pid, SIGTERM);
    CHECK(finish(node).code == 0);

    // A specific listen address is advertised as it is, without a warning.
    auto local = spawn(d, "local", {"node", "--data", d / "data2", "--domain", "east", "--role", "peer", "--trust",
                                    d / "op.public", "--listen", "127.0.0.1:0"});
    auto s2 = ctl(field(ready(local), "control"), "status");
    CHECK(s2["node"].value("advertise", "") == "127.0.0.1");
    CHECK(s2["node"]["warnings"].empty());
}
