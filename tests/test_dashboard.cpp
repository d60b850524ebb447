// The live dashboard: its web server (cpp-httplib threads, answers on the loop
// thread), its ring buffer, its settings, and a daemon serving the page and
// the JSON over real HTTP. The 3-domain swarm in a browser: tests/browser/.
#include <doctest/doctest.h>

#include <atomic>
#include <ctime>
#include <thread>

#include "daemon_support.hpp"
#include "dht/dht.hpp"
#include "node/config.hpp"
#include "node/dashboard.hpp"
#include "transfer/web_server.hpp"

using namespace ps;
using namespace ps::test;

namespace {

// An HTTP request from another thread while the loop runs; the reply text.
std::string get_while_running(transfer::Loop& loop, std::uint16_t port, const std::string& request) {
    std::string reply;
    std::atomic<bool> done{false};
    std::thread client([&] {
        reply = http_get(port, request);
        done = true;
    });
    loop.run_until([&] { return done.load(); }, 10'000);
    client.join();
    return reply;
}

// The dashboard's JSON from a daemon on `port`, or null.
json api_state(std::uint16_t port) {
    auto r = http_get(port, "GET /api/state HTTP/1.0\r\n\r\n");
    auto body = r.find("\r\n\r\n");
    if (body == std::string::npos) return nullptr;
    return json::parse(r.substr(body + 4), nullptr, false);
}

std::uint16_t dashboard_port(const std::string& ready_line) {
    auto ep = field(ready_line, "dashboard");
    REQUIRE_MESSAGE(ep.rfind("127.0.0.1:", 0) == 0, ready_line);
    return static_cast<std::uint16_t>(std::stoi(ep.substr(10)));
}

}  // namespace

TEST_CASE("dashboard: the web server answers on the loop thread and refuses what is not GET") {
    transfer::Loop loop;
    std::thread::id answered_on;
    std::string seen_path;
    auto srv = transfer::WebServer::start(loop, "127.0.0.1", 0, [&](const std::string& path, auto respond) {
        answered_on = std::this_thread::get_id();
        seen_path = path;
        respond({200, "application/json", "{\"x\":1}"});
    });
    REQUIRE(srv);
    REQUIRE((*srv)->port() > 0);
    auto r = get_while_running(loop, (*srv)->port(), "GET /api/state HTTP/1.0\r\n\r\n");
    CHECK(r.find("HTTP/1.1 200") == 0);
    CHECK(r.find("{\"x\":1}") != std::string::npos);
    CHECK(r.find("Cache-Control: no-store") != std::string::npos);
    CHECK(answered_on == std::this_thread::get_id());  // the loop runs on this thread
    CHECK(seen_path == "/api/state");
    seen_path.clear();
    CHECK(get_while_running(loop, (*srv)->port(), "POST /api/state HTTP/1.0\r\nContent-Length: 0\r\n\r\n").find("HTTP/1.1 405") == 0);
    CHECK(seen_path.empty());
    // A port in use is named.
    auto again = transfer::WebServer::start(loop, "127.0.0.1", (*srv)->port(), [](const std::string&, auto) {});
    REQUIRE_FALSE(again);
    CHECK(again.error().find("cannot listen on 127.0.0.1:") == 0);
}

TEST_CASE("dashboard: a node that does not answer in time gets 503, and closing answers waiting requests") {
    transfer::Loop loop;
    std::vector<std::function<void(transfer::WebReply)>> held;  // never answered
    transfer::WebServer::Limits lim;
    lim.reply_timeout_ms = 300;
    auto srv = transfer::WebServer::start(loop, "127.0.0.1", 0, [&](const std::string&, auto respond) { held.push_back(respond); }, lim);
    REQUIRE(srv);
    auto t0 = std::chrono::steady_clock::now();
    auto r = get_while_running(loop, (*srv)->port(), "GET / HTTP/1.0\r\n\r\n");
    CHECK(r.find("HTTP/1.1 503") == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    // A request waiting when the server goes: answered 503 at once, no hang.
    lim.reply_timeout_ms = 30'000;
    auto srv2 = transfer::WebServer::start(loop, "127.0.0.1", 0, [&](const std::string&, auto respond) { held.push_back(respond); }, lim);
    REQUIRE(srv2);
    std::string reply;
    std::thread client([&, port = (*srv2)->port()] { reply = http_get(port, "GET / HTTP/1.0\r\n\r\n"); });
    const auto before = held.size();
    loop.run_until([&] { return held.size() > before; }, 5'000);
    t0 = std::chrono::steady_clock::now();
    srv2->reset();
    client.join();
    CHECK(reply.find("HTTP/1.1 503") == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    held.back()({200, "text/plain", "late"});  // answering after the server went is no harm
}

TEST_CASE("dashboard: the ring buffer keeps the newest samples, oldest first") {
    node::Ring<int> ring(3);
    CHECK(ring.newest() == nullptr);
    for (int i = 1; i <= 5; ++i) ring.push(i);
    REQUIRE(ring.size() == 3);
    CHECK(ring.at(0) == 3);
    CHECK(ring.at(2) == 5);
    CHECK(*ring.newest() == 5);
}

TEST_CASE("dashboard: settings name the key when a device asks for one, or the address or interval is bad") {
    node::DaemonConfig c;
    c.data_dir = "/tmp/x";
    c.domain = "d1";
    c.trust = "/tmp/op.public";
    c.role = "peer";
    c.dashboard = "127.0.0.1:8090";
    auto st = node::validate_config(c);
    REQUIRE_FALSE(st);
    CHECK(st.error().find("dashboard.listen: only the origin and super-nodes") != std::string::npos);
    c.role = "origin";
    CHECK(node::validate_config(c));
    c.dashboard_publish = true;
    CHECK(node::validate_config(c).error().find("dashboard.publish: only super-nodes") != std::string::npos);
    c.dashboard_publish = false;
    c.dashboard = "nowhere";
    CHECK(node::validate_config(c).error().find("dashboard.listen") != std::string::npos);
    c.dashboard = "127.0.0.1:0";
    c.dashboard_interval_ms = 100;
    CHECK(node::validate_config(c).error().find("dashboard.interval") != std::string::npos);
    auto parsed = node::parse_config("[dashboard]\nlisten = \"127.0.0.1:8090\"\ninterval = \"1s\"\npublish = true\n", "t.toml");
    REQUIRE(parsed);
    CHECK(parsed->dashboard == "127.0.0.1:8090");
    CHECK(parsed->dashboard_interval_ms == 1000);
    CHECK(parsed->dashboard_publish);
}

TEST_CASE("dashboard: an origin serves the page, uPlot and its samples as JSON over HTTP") {
    TempDir d;
    auto p = make_patch(d, 300'000, 31, "dash");
    auto proc = spawn(d, "origin", {"node", "--data", d / "origin", "--domain", "core", "--role", "origin", "--trust", p.pub,
                                    "--serve", p.manifest + "=" + p.file, "--dashboard", "127.0.0.1:0",
                                    "--dashboard-interval", "500ms"});
    const auto port = dashboard_port(ready(proc));
    auto page = http_get(port, "GET / HTTP/1.0\r\n\r\n");
    CHECK(page.find("HTTP/1.1 200") == 0);
    CHECK(page.find("Content-Type: text/html") != std::string::npos);
    CHECK(page.find("id=\"domains\"") != std::string::npos);
    auto js = http_get(port, "GET /uplot.js HTTP/1.0\r\n\r\n");
    CHECK(js.find("text/javascript") != std::string::npos);
    CHECK_MESSAGE(js.find("uPlot") != std::string::npos, "uPlot embedded (npm ci in web/ before building)");
    CHECK(http_get(port, "GET /nothing HTTP/1.0\r\n\r\n").find("HTTP/1.1 404") == 0);
    json state;
    bool sampled = wait_for([&] {
        state = api_state(port);
        return state.is_object() && state["samples"].size() >= 2;
    }, 10'000);
    REQUIRE_MESSAGE(sampled, state.dump());
    CHECK(state["role"] == "origin");
    CHECK(state["patch"]["name"] == "dash");
    CHECK(state["interval_s"] == 0.5);
    CHECK(state["samples"].back().contains("rejected"));
    CHECK(state["samples"].back()["rejected"].contains("segments"));
}

TEST_CASE("dashboard: the origin shows a domain's summary only when a super-node of that domain signed it") {
    REQUIRE(crypto::init());
    TempDir d;
    auto p = make_patch(d, 200'000, 32, "dash");
    auto proc = spawn(d, "origin", {"node", "--data", d / "origin", "--domain", "core", "--role", "origin", "--trust", p.pub,
                                    "--serve", p.manifest + "=" + p.file, "--dashboard", "127.0.0.1:0",
                                    "--dashboard-interval", "500ms"});
    const auto line = ready(proc);
    const auto port = dashboard_port(line);
    json state;
    REQUIRE(wait_for([&] { return (state = api_state(port)).is_object() && state["patch"].is_object(); }, 10'000));
    auto raw_id = from_hex(state["patch"]["id"].get<std::string>());
    REQUIRE(raw_id);
    Hash32 id;
    std::copy(raw_id->begin(), raw_id->end(), id.begin());

    // A DHT node of this test's own joins through the origin and puts: a super-node
    // membership record of domain "good" and that super's summary, and a summary
    // of domain "evil" signed by a key with no membership record at all.
    transfer::Loop loop;
    dht::Config c;
    c.max_peer_req_per_sec = -1;
    c.bootstrap = {"127.0.0.1:" + field(line, "dht")};
    auto dn = dht::Node::start(c, [&loop](std::function<void()> fn) { loop.post(std::move(fn)); });
    REQUIRE_MESSAGE(dn, dn.error());
    auto& node = **dn;
    REQUIRE(loop.run_until([&] { return node.good_nodes() > 0; }, 10'000));
    const auto good = crypto::generate_keypair(), evil = crypto::generate_keypair();
    wire::HolderRecord member;
    member.role = Role::Super;
    member.domain = "good";
    member.host = "127.0.0.1";
    member.port = 40000;
    member.issued = std::time(nullptr);
    member.seq = 1;
    auto summary = [&](const std::string& domain) {
        wire::DomainSummary s;
        s.domain = domain;
        s.manifest_id = id;
        s.issued = std::time(nullptr);
        s.seq = 1;
        s.online = s.holders = s.complete = 2;
        return s;
    };
    int acked = 0;
    auto ack = [&](bool ok) { acked += ok; };
    node.announce(dht::global_holder_key(Hash32{}), 1, wire::encode_record(member, good.sk), ack);
    node.announce(dht::summary_key(id), 2, wire::encode_summary(summary("good"), good.sk), ack, dht::ValueKind::Summary);
    node.announce(dht::summary_key(id), 3, wire::encode_summary(summary("evil"), evil.sk), ack, dht::ValueKind::Summary);
    REQUIRE(loop.run_until([&] { return acked == 3; }, 15'000));
    bool shown = false;
    loop.run_until([&] {
        state = api_state(port);
        shown = state.is_object() && !state["samples"].empty() && state["samples"].back()["domains"].contains("good");
        return shown;
    }, 20'000);
    REQUIRE_MESSAGE(shown, state.dump());
    const auto& latest = state["samples"].back()["domains"];
    CHECK(latest["good"]["complete"] == 2);
    CHECK_FALSE(latest.contains("evil"));
    bool down = false;
    node.shutdown([&] { down = true; });
    loop.run_until([&] { return down; }, 10'000);
}

TEST_CASE("dashboard: peers refused for their certificate show in the origin's rejected counters") {
    TempDir d;
    Swarm s(d);  // every daemon enrolled, enrollment required
    s.start("origin", "origin", "core", {"--dashboard", "127.0.0.1:0", "--dashboard-interval", "500ms"});
    const auto port = dashboard_port(s.ready_lines["origin"]);
    s.publish("cert", 300'000, 43, false);
    // A device with no certificate (its trust file names the key only) finds
    // the origin in the DHT and dials it: refused at the handshake.
    auto r = run_cli(d, {"fetch", "--data", d / "stranger", "--domain", "east", "--trust", s.pub, "--bootstrap",
                         "127.0.0.1:" + s.dht, "--manifest", d / "cert-v1.manifest", "--out", d / "out.bin",
                         "--seed-ratio", "0", "--timeout", "8"});
    CHECK(r.code != 0);
    json state;
    bool counted = wait_for([&] {
        state = api_state(port);
        return state.is_object() && !state["samples"].empty() &&
               state["samples"].back()["rejected"].value("certificates", 0) >= 1;
    }, 10'000);
    CHECK_MESSAGE(counted, state.dump());
    CHECK(ctl(s.sock("origin"), "status")["node"]["enrollment"]["peers_refused"].value("missing", 0) >= 1);
}
