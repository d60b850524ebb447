// Attacks on a live node over loopback, by hostile peers that speak the real
// protocol (tests/hostile.hpp): slot squatting, write-queue floods, poisoned
// contacts. Each test fails when its defence (docs/security.md) is removed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <new>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostile.hpp"
#include "node/node.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

// A victim node on loopback, started with options the test adjusted.
struct Arena {
    TempDir dir{"ps-hostile"};
    transfer::Loop loop;
    node::NodeOptions opts;
    std::unique_ptr<node::Node> node;
    Arena() {
        REQUIRE(crypto::init());
        opts.data_dir = dir / "victim";
        opts.dht.max_peer_req_per_sec = -1;
        opts.gossip_peers = 0;  // the victim dials nobody on its own
    }
    node::Node& start(Role role = Role::Super) {
        auto kp = crypto::generate_keypair();
        node = std::make_unique<node::Node>(loop, opts, transfer::Identity{kp.sk, kp.pk, role, "d1"});
        REQUIRE(node->start());
        return *node;
    }
    ~Arena() {
        if (!node) return;
        bool done = false;
        node->shutdown([&] { done = true; });
        run_until(loop, [&] { return done; }, 10'000);
        CHECK(done);
        node.reset();
    }
};

}  // namespace

TEST_CASE("hostile: 1,000 idle authenticated connections from one address do not keep an honest peer out") {
    Arena a;
    auto& o = a.opts;
    auto& loop = a.loop;
    o.cap_loopback = true;  // the attacker is 127.0.0.1, the honest peer 127.0.0.2
    o.max_inbound_per_address = 8;
    auto& victim = a.start();

    Hostile attacker(loop);
    constexpr std::size_t kAttempts = 1000;
    for (std::size_t i = 0; i < kAttempts; ++i) attacker.dial(victim.listen_port());
    // Every attempt ends up either authenticated and held, or closed.
    CHECK(run_until(loop, [&] {
        std::size_t settled = 0;
        for (auto& c : attacker.conns) settled += attacker.ready_at.count(c->id()) || attacker.closed.count(c->id());
        return settled == kAttempts;
    }, 30'000));
    MESSAGE("attacker holds ", attacker.open(), " authenticated idle connections");
    CHECK(attacker.open() <= o.max_inbound_per_address);

    Hostile honest_side(loop);  // honest here: it just connects
    auto t0 = loop.now_ms();
    auto& honest = honest_side.dial(victim.listen_port(), "127.0.0.2");
    CHECK(run_until(loop, [&] { return honest_side.ready_at.count(honest.id()) > 0; }, 2'000));
    if (honest_side.ready_at.count(honest.id()))
        MESSAGE("honest peer connected in ", honest_side.ready_at[honest.id()] - t0, " ms");
    CHECK_FALSE(honest_side.closed.count(honest.id()));
}

TEST_CASE("hostile: an authenticated peer that sends only keepalives is closed after the idle timeout") {
    Arena a;
    auto& loop = a.loop;
    a.opts.idle_timeout_ms = 1'500;
    auto& victim = a.start();

    Hostile attacker(loop);
    auto& squatter = attacker.dial(victim.listen_port());
    REQUIRE(run_until(loop, [&] { return attacker.ready_at.count(squatter.id()) > 0; }, 5'000));
    REQUIRE(run_until(loop, [&] { return victim.connected_peers() == 1; }, 2'000));
    auto t0 = loop.now_ms();
    transfer::Timer keepalive(loop);
    keepalive.start(200, 200, [&] {
        if (squatter.ready()) attacker.send(squatter, wire::MsgKeepalive{});
    });
    CHECK(run_until(loop, [&] { return attacker.closed.count(squatter.id()) > 0; }, 6'000));
    keepalive.stop();
    auto held = loop.now_ms() - t0;
    MESSAGE("squatter held its slot for ", held, " ms");
    CHECK(held >= 1'000);
    CHECK(victim.connected_peers() == 0);
}

namespace {

// Resident set of this process, in bytes.
std::uint64_t rss_bytes() {
    std::uint64_t pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%lu %lu", &pages, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

TEST_CASE("hostile: a peer that sends Requests and never reads is disconnected at the write-queue cap") {
    Arena a;
    auto& loop = a.loop;
    auto& o = a.opts;
    auto& victim = a.start();

    Hostile attacker(loop);
    auto& flood = attacker.dial(victim.listen_port());
    REQUIRE(run_until(loop, [&] { return attacker.ready_at.count(flood.id()) > 0; }, 5'000));
    REQUIRE(run_until(loop, [&] { return victim.connected_peers() == 1; }, 2'000));
    flood.stop_reading();
    auto rss0 = rss_bytes();
    // Requests for a patch the victim does not have: each one earns a Reject
    // that the attacker never reads. Sent in batches while the loop runs.
    Hash32 unknown{};
    unknown[0] = 0x42;
    std::uint32_t sent = 0;
    std::size_t max_queued = 0;
    std::uint64_t max_rss = rss0;
    bool dropped = loop.run_until([&] {
        max_queued = std::max(max_queued, victim.status().queued_bytes);
        max_rss = std::max(max_rss, rss_bytes());
        if (victim.connected_peers() == 0) return true;
        if (flood.ready() && flood.queued_bytes() < (256u << 10) && sent < 2'000'000)
            for (int i = 0; i < 2'000; ++i) attacker.send(flood, wire::MsgRequest{unknown, sent++});
        return false;
    }, 60'000, 1);
    MESSAGE("requests sent: ", sent, ", most bytes queued at the victim: ", max_queued,
            ", RSS growth: ", (max_rss - rss0) >> 10, " KiB");
    CHECK(dropped);
    CHECK(max_queued <= o.max_queued_per_peer);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed memory resident: RSS says nothing there
    CHECK(max_rss - rss0 <= std::uint64_t{24} << 20);  // the cap, the attacker's own queue, allocator slack
#endif
}

namespace {

// A plain TCP listener on 127.0.0.1 that counts connections and closes each at
// once: the address forged contacts point at.
struct Target {
    int fd = -1;
    std::uint16_t port = 0;
    std::size_t accepted = 0;
    Target() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 128) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~Target() { ::close(fd); }
    void poll() {
        for (int c; (c = ::accept(fd, nullptr, nullptr)) >= 0; ++accepted) ::close(c);
    }
};

std::vector<wire::Contact> peers_in(const std::vector<Bytes>& frames) {
    std::vector<wire::Contact> out;
    for (auto& f : frames)
        if (auto m = wire::decode_message(f); m && std::holds_alternative<wire::MsgPeers>(*m))
            for (auto& c : std::get<wire::MsgPeers>(*m).contacts) out.push_back(c);
    return out;
}

}  // namespace

TEST_CASE("hostile: forged contacts in a Peers message are dialled a bounded number of times, then forgotten, never passed on") {
    Arena a;
    auto& loop = a.loop;
    auto& o = a.opts;
    Target target;
    o.gossip_peers = 4;         // the node dials contacts to keep a few connections
    o.contact_retry_ms = 200;   // back-off 200, 600 ms, then forgotten
    auto& n = a.start(Role::Peer);

    Hostile attacker(loop);
    auto& conn = attacker.dial(n.listen_port());
    REQUIRE(run_until(loop, [&] { return attacker.ready_at.count(conn.id()) > 0; }, 5'000));
    // The first contact is the attacker itself (as a node sends it), at an
    // address nobody listens on; then 31 forged keys, all at the target.
    wire::MsgPeers forged;
    forged.contacts.push_back({attacker.ids.back().key, "127.0.0.1", 1, Role::Peer, "d1"});
    for (std::size_t i = 1; i < wire::kMaxContacts; ++i)
        forged.contacts.push_back({crypto::generate_keypair().pk, "127.0.0.1", target.port, Role::Peer, "d1"});
    attacker.send(conn, forged);
    REQUIRE(run_until(loop, [&] { return n.status().contacts > 0; }, 2'000));
    auto t0 = loop.now_ms();
    // A newcomer hears the node's view at once: the forged contacts are not in it.
    Hostile newcomer(loop);
    newcomer.dial(n.listen_port());
    REQUIRE(run_until(loop, [&] { target.poll(); return !peers_in(newcomer.frames).empty(); }, 5'000));
    for (auto& c : peers_in(newcomer.frames)) CHECK(c.port != target.port);

    bool forgotten = run_until(loop, [&] {
        target.poll();
        return n.status().contacts == 0;
    }, 15'000);
    // A second message on the same connection does not count again.
    attacker.send(conn, forged);
    run_until(loop, [&] { target.poll(); return false; }, 1'500);
    MESSAGE("target dialled ", target.accepted, " times; contacts forgotten after ", loop.now_ms() - t0, " ms");
    CHECK(forgotten);
    CHECK(n.status().contacts == 0);
    CHECK(target.accepted >= 1);
    CHECK(target.accepted <= o.max_dials_per_address_per_minute);
}

TEST_CASE("hostile: an exception while handling one peer's message closes that connection, and the node serves the others") {
    Arena a;
    auto& loop = a.loop;
    a.opts.fault_on_message = [](const wire::Message& m) {
        if (auto* bye = std::get_if<wire::MsgBye>(&m); bye && bye->reason == "throw") throw std::bad_alloc();
    };
    auto& victim = a.start();
    Hostile peers(loop);
    auto& bad = peers.dial(victim.listen_port());
    auto& good = peers.dial(victim.listen_port());
    REQUIRE(run_until(loop, [&] { return victim.connected_peers() == 2 && peers.ready_at.size() == 2; }, 5'000));
    peers.send(bad, wire::MsgBye{"throw"});
    CHECK(run_until(loop, [&] { return peers.closed.count(bad.id()) > 0; }, 5'000));
    CHECK(victim.connected_peers() == 1);
    // The other peer is still served: a Request for an unknown patch earns a Reject.
    auto before = peers.frames.size();
    peers.send(good, wire::MsgRequest{Hash32{}, 0});
    CHECK(run_until(loop, [&] {
        for (std::size_t i = before; i < peers.frames.size(); ++i)
            if (auto m = wire::decode_message(peers.frames[i]); m && std::holds_alternative<wire::MsgReject>(*m)) return true;
        return false;
    }, 5'000));
    CHECK_FALSE(peers.closed.count(good.id()));
}
