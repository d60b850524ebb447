// core::Engine on its own: events in, actions out, no I/O.
#include <doctest/doctest.h>

#include <memory>
#include <optional>

#include "core/engine.hpp"
#include "engine_support.hpp"

using namespace ps;
using namespace ps::core;

namespace {

NodeKey key(std::uint8_t b) {
    NodeKey k{};
    k.fill(b);
    return k;
}

const PatchId kId = [] {
    PatchId p{};
    p.fill(7);
    return p;
}();

constexpr PatchShape kShape{4, 1u << 20, 4u << 20};

EngineConfig config(std::uint8_t self, Role role, const std::string& domain) {
    return testing::config(key(self), role, domain);
}

using testing::take;

Bytes all_bits() { return Bitfield(kShape.segments, true).to_bytes(); }

// An engine holding the whole patch, `peers` connected as ConnId 1, 2, ...
std::unique_ptr<Engine> seeder(const EngineConfig& cfg, std::initializer_list<PeerIdentity> peers) {
    auto e = std::make_unique<Engine>(cfg, 1);
    e->add_patch(kId, kShape, Bitfield(kShape.segments, true), false, Instant{0});
    std::uint64_t c = 0;
    for (auto& p : peers) REQUIRE(e->conn_up(ConnId{++c}, p, false, Instant{0}));
    e->actions().clear();
    return e;
}

// Connection `c` asks for `seg` at `t`: nullopt if it is served, else the
// reason of the refusal.
std::optional<RejectReason> ask(Engine& e, std::uint64_t c, std::uint32_t seg, Millis t) {
    e.actions().clear();
    e.on_request(ConnId{c}, kId, Segment{seg}, Instant{t});
    auto rej = take<act::SendReject>(e);
    auto served = take<act::Serve>(e);
    REQUIRE(rej.size() + served.size() == 1);
    if (rej.empty()) return std::nullopt;
    return rej[0].reason;
}

}  // namespace

TEST_CASE("engine: a holder banned for a bad segment is never asked again, whatever connection it comes back on") {
    Engine dl(config(1, Role::Peer, "d1"), 42);
    dl.add_patch(kId, kShape, Bitfield(kShape.segments), true, Instant{0});
    dl.actions().clear();
    PeerIdentity liar{key(9), Role::Peer, "d1"};
    REQUIRE(dl.conn_up(ConnId{1}, liar, true, Instant{0}));
    dl.on_have(ConnId{1}, kId, all_bits(), Instant{0});
    auto asked = take<act::SendRequest>(dl);
    REQUIRE_FALSE(asked.empty());
    dl.actions().clear();
    // The first segment arrives whole and fails its hash.
    auto seg = asked.front().seg;
    CHECK(dl.on_data(ConnId{1}, kId, seg, 0, kShape.length(idx(seg)), Instant{10}) == DataVerdict::TakeLast);
    CHECK(take<act::Store>(dl).size() == 1);
    dl.actions().clear();
    dl.stored(ConnId{1}, kId, seg, StoreOutcome::BadHash, Instant{11});
    CHECK(take<act::Banned>(dl).size() == 1);
    CHECK(dl.stats(kId)->banned.count(key(9)) == 1);
    CHECK(take<act::SendRequest>(dl).empty());
    dl.actions().clear();

    // It reconnects on a new connection and offers everything again.
    dl.conn_down(ConnId{1}, Instant{20});
    REQUIRE(dl.conn_up(ConnId{2}, liar, false, Instant{30}));
    dl.on_have(ConnId{2}, kId, all_bits(), Instant{30});
    for (Millis t = 30; t < 120'000; t += 500) {
        dl.tick(Instant{t});
        CHECK(take<act::SendRequest>(dl).empty());
        dl.actions().clear();
    }
    // And it is refused as a downloader too.
    dl.on_request(ConnId{2}, kId, Segment{0}, Instant{120'000});
    auto rej = take<act::SendReject>(dl);
    REQUIRE(rej.size() == 1);
    CHECK(rej[0].reason == RejectReason::Banned);
    dl.actions().clear();

    // An honest holder is asked at once.
    REQUIRE(dl.conn_up(ConnId{3}, PeerIdentity{key(5), Role::Peer, "d1"}, true, Instant{120'001}));
    dl.on_have(ConnId{3}, kId, all_bits(), Instant{120'001});
    auto honest = take<act::SendRequest>(dl);
    REQUIRE_FALSE(honest.empty());
    for (auto& r : honest) CHECK(r.conn == ConnId{3});
}

TEST_CASE("engine: a banned node's requests are refused even after it reconnects") {
    Engine holder(config(1, Role::Peer, "d1"), 1);
    Bitfield some(kShape.segments);
    some.set(0);
    holder.add_patch(kId, kShape, some, true, Instant{0});
    PeerIdentity liar{key(9), Role::Peer, "d1"};
    REQUIRE(holder.conn_up(ConnId{1}, liar, true, Instant{0}));
    holder.on_have(ConnId{1}, kId, all_bits(), Instant{0});
    auto asked = take<act::SendRequest>(holder);
    REQUIRE_FALSE(asked.empty());
    holder.actions().clear();
    auto seg = asked.front().seg;
    REQUIRE(holder.on_data(ConnId{1}, kId, seg, 0, kShape.length(idx(seg)), Instant{1}) == DataVerdict::TakeLast);
    holder.stored(ConnId{1}, kId, seg, StoreOutcome::BadHash, Instant{2});
    holder.conn_down(ConnId{1}, Instant{3});
    REQUIRE(holder.conn_up(ConnId{4}, liar, false, Instant{4}));
    holder.actions().clear();
    holder.on_request(ConnId{4}, kId, Segment{0}, Instant{5});
    auto rej = take<act::SendReject>(holder);
    REQUIRE(rej.size() == 1);
    CHECK(rej[0].reason == RejectReason::Banned);
    CHECK(take<act::Serve>(holder).empty());
}

TEST_CASE("engine: a stalled request is cancelled at the deadline the engine announced, with no polling") {
    Engine dl(config(1, Role::Peer, "d1"), 3);
    dl.add_patch(kId, kShape, Bitfield(kShape.segments), true, Instant{0});
    REQUIRE(dl.conn_up(ConnId{1}, PeerIdentity{key(2), Role::Peer, "d1"}, true, Instant{0}));
    dl.on_have(ConnId{1}, kId, all_bits(), Instant{0});
    REQUIRE_FALSE(take<act::SendRequest>(dl).empty());
    dl.actions().clear();
    // Walk from deadline to deadline: the timeout must be one of them.
    Instant t{0};
    Millis cancelled_at = 0;
    for (int i = 0; i < 100 && !cancelled_at; ++i) {
        auto next = dl.next_deadline(t);
        REQUIRE(next);
        REQUIRE(*next > t);
        t = *next;
        dl.tick(t);
        if (!take<act::SendCancel>(dl).empty()) cancelled_at = t.ms;
        dl.actions().clear();
    }
    CHECK(cancelled_at == DownloadConfig{}.request_timeout);
}

TEST_CASE("engine: two connections between the same pair: both ends keep the same one") {
    Engine a(config(1, Role::Peer, "d1"), 1), b(config(2, Role::Peer, "d1"), 2);
    PeerIdentity ia{key(1), Role::Peer, "d1"}, ib{key(2), Role::Peer, "d1"};
    // Connection 10: a dialed b. Connection 20: b dialed a. Each end names them alike.
    bool a10 = a.conn_up(ConnId{10}, ib, true, Instant{0});
    bool b10 = b.conn_up(ConnId{10}, ia, false, Instant{0});
    bool a20 = a.conn_up(ConnId{20}, ib, false, Instant{0});
    bool b20 = b.conn_up(ConnId{20}, ia, true, Instant{0});
    CHECK(a10);
    CHECK(b10);
    auto closed = [](Engine& e) {
        std::vector<std::uint64_t> v;
        for (auto& c : take<act::Close>(e)) v.push_back(raw(c.conn));
        return v;
    };
    // Key 1 < key 2: the connection a dialed (10) survives on both ends.
    CHECK_FALSE(a20);
    CHECK_FALSE(b20);
    CHECK(closed(a) == std::vector<std::uint64_t>{20});
    CHECK(closed(b) == std::vector<std::uint64_t>{20});
}

TEST_CASE("engine: the origin hands a segment out once per reserve period and domain") {
    auto cfg = config(1, Role::Origin, "core");
    cfg.origin_reserve = 2'000;
    cfg.superseed_reserve = 2'000;
    auto o = seeder(cfg, {{key(2), Role::Peer, "d1"}, {key(3), Role::Peer, "d1"}, {key(4), Role::Peer, "d2"}});
    CHECK(ask(*o, 1, 0, 0) == std::nullopt);
    CHECK(ask(*o, 2, 0, 1'000) == RejectReason::Busy);  // d1 has its copy
    // d2 has no super-node here and sees no d1 device: its own first copy.
    CHECK(ask(*o, 3, 0, 1'000) == std::nullopt);
    CHECK(ask(*o, 2, 0, 2'001) == std::nullopt);
}

TEST_CASE("engine: a super-node's exports do not hold back its own domain's first copy") {
    auto cfg = config(1, Role::Super, "d1");
    cfg.superseed_reserve = 10'000;
    auto e = seeder(cfg, {{key(2), Role::Super, "d2"}, {key(3), Role::Peer, "d1"}, {key(4), Role::Peer, "d1"},
                          {key(5), Role::Peer, "d2"}});
    CHECK(ask(*e, 1, 0, 0) == std::nullopt);  // to another domain's super-node: an export
    CHECK(ask(*e, 4, 0, 50) == std::nullopt);  // and to another domain's device
    // Its uplink is busy now. The own domain has no copy yet: its first
    // device is served at once (it used to wait out the reserve)...
    CHECK(ask(*e, 2, 0, 100) == std::nullopt);
    // ...and the next one takes it from that device.
    CHECK(ask(*e, 3, 0, 200) == RejectReason::Busy);
    // Exports are never held back by the reserve.
    CHECK(ask(*e, 1, 0, 300) == std::nullopt);
}

TEST_CASE("engine: a segment queued for one requester is not promised to a second while it waits") {
    auto cfg = config(1, Role::Origin, "core");
    cfg.origin_reserve = 30'000;
    cfg.upload_buffer = kShape.segment_size;  // one segment in flight: the rest wait in the queue
    auto o = seeder(cfg, {{key(2), Role::Super, "d1"}, {key(3), Role::Super, "d2"}, {key(4), Role::Super, "d3"}});
    CHECK(ask(*o, 1, 0, 0) == std::nullopt);  // out at once: the buffer is full now
    o->actions().clear();
    o->on_request(ConnId{2}, kId, Segment{1}, Instant{10});
    CHECK(take<act::Serve>(*o).empty());  // queued behind segment 0
    CHECK(take<act::SendReject>(*o).empty());
    // A second super-node asking for segment 1 meanwhile: it is promised, so busy
    // (it used to be queued too, and the origin sent two copies).
    CHECK(ask(*o, 3, 1, 20) == RejectReason::Busy);
}

TEST_CASE("engine: the origin keeps reserve records for a bounded number of domains") {
    auto cfg = config(1, Role::Origin, "core");
    cfg.superseed_reserve = 60'000;
    auto o = seeder(cfg, {});
    // One device of each of 5,000 domains: each connects, asks, and leaves.
    auto visit = [&](int i, Millis t) {
        NodeKey k{};
        k[0] = 0xAA;
        k[1] = static_cast<std::uint8_t>(i >> 8);
        k[2] = static_cast<std::uint8_t>(i);
        ConnId c{static_cast<std::uint64_t>(100'000 + t)};
        REQUIRE(o->conn_up(c, PeerIdentity{k, Role::Peer, "d" + std::to_string(i)}, false, Instant{t}));
        auto r = ask(*o, raw(c), 0, t);
        o->conn_down(c, Instant{t});
        return r;
    };
    // Every domain's first device is served: none is held back by another domain's copy.
    for (int i = 0; i < 5'000; ++i) REQUIRE(visit(i, 1'000 + i) == std::nullopt);
    // Past the bound the records started over: the first domains' records are
    // gone (a second copy, never unbounded memory); the latest are kept.
    CHECK(visit(0, 10'000) == std::nullopt);
    CHECK(visit(4'999, 10'001) == RejectReason::Busy);
}

TEST_CASE("engine: Data that was not asked for, or out of order, is dropped or ends the connection") {
    Engine dl(config(1, Role::Peer, "d1"), 5);
    dl.add_patch(kId, kShape, Bitfield(kShape.segments), true, Instant{0});
    REQUIRE(dl.conn_up(ConnId{1}, PeerIdentity{key(2), Role::Peer, "d1"}, true, Instant{0}));
    dl.on_have(ConnId{1}, kId, all_bits(), Instant{0});
    auto asked = take<act::SendRequest>(dl);
    REQUIRE_FALSE(asked.empty());
    std::set<std::uint32_t> requested;
    for (auto& r : asked) requested.insert(idx(r.seg));
    std::uint32_t not_asked = 0;
    while (requested.count(not_asked)) ++not_asked;
    if (not_asked < kShape.segments)
        CHECK(dl.on_data(ConnId{1}, kId, Segment{not_asked}, 0, 100, Instant{1}) == DataVerdict::Drop);
    auto seg = asked.front().seg;
    CHECK(dl.on_data(ConnId{1}, kId, seg, 0, 1000, Instant{2}) == DataVerdict::Take);
    dl.actions().clear();
    CHECK(dl.on_data(ConnId{1}, kId, seg, 5000, 1000, Instant{3}) == DataVerdict::Violation);
    auto closes = take<act::Close>(dl);
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].why == CloseWhy::ProtocolViolation);
    CHECK_FALSE(dl.peer(ConnId{1}));
}

TEST_CASE("engine: holder lookups back off with jitter once holders are connected, and not before") {
    auto lookups_over = [](bool with_holder, std::uint64_t seed) {
        Engine dl(config(1, Role::Peer, "d1"), seed);
        dl.add_patch(kId, kShape, Bitfield(kShape.segments), true, Instant{0});
        if (with_holder) {
            REQUIRE(dl.conn_up(ConnId{1}, PeerIdentity{key(2), Role::Peer, "d1"}, true, Instant{0}));
            Bitfield none(kShape.segments);
            dl.on_have(ConnId{1}, kId, none.to_bytes(), Instant{0});  // connected, nothing to give yet
        }
        std::vector<Millis> at;
        Instant t{0};
        for (int i = 0; i < 10'000 && t.ms < 600'000; ++i) {
            for (auto& a : dl.actions())
                if (std::holds_alternative<act::Lookup>(a)) at.push_back(t.ms);
            dl.actions().clear();
            auto next = dl.next_deadline(t);
            if (!next) break;
            t = *next;
            dl.tick(t);
        }
        return at;
    };
    auto alone = lookups_over(false, 1);
    CHECK(alone.size() >= 590);  // every second while nobody is connected
    auto a = lookups_over(true, 1), b = lookups_over(true, 2);
    // Doubling from 1 s to 60 s: about 15 lookups in ten minutes, not 600.
    CHECK(a.size() <= 20);
    CHECK(a.size() >= 8);
    REQUIRE(a.size() > 5);
    Millis last_gap = a[a.size() - 1] - a[a.size() - 2];
    CHECK(last_gap >= 45'000);
    CHECK(last_gap <= 75'000);
    CHECK(a != b);  // jitter: two nodes do not look up in step
}

TEST_CASE("engine: the origin's long reserve holds for a domain with a super-node, the ordinary one for a domain without") {
    auto cfg = config(1, Role::Origin, "core");
    cfg.origin_reserve = 30'000;
    cfg.superseed_reserve = 2'000;
    auto o = seeder(cfg, {{key(2), Role::Peer, "d1"}, {key(3), Role::Peer, "d2"}});
    CHECK(ask(*o, 1, 0, 0) == std::nullopt);
    // d2 has no super-node here: after the ordinary reserve it is served.
    CHECK(ask(*o, 2, 0, 2'001) == std::nullopt);
    // Once d2's super-node is connected, d2 waits the long reserve: the
    // segment reaches it through the super-nodes.
    REQUIRE(o->conn_up(ConnId{3}, PeerIdentity{key(4), Role::Super, "d2"}, false, Instant{2'002}));
    CHECK(ask(*o, 3, 0, 3'000) == std::nullopt);
    CHECK(ask(*o, 2, 0, 4'100) == RejectReason::Busy);
    // The super-node gone, d2 has the ordinary reserve again.
    o->conn_down(ConnId{3}, Instant{4'200});
    CHECK(ask(*o, 2, 0, 4'300) == std::nullopt);
}

TEST_CASE("engine: a device with a busy uplink hands a segment to one peer of its domain at a time") {
    auto cfg = config(1, Role::Peer, "d1");
    cfg.peer_pace = 1'500;
    auto e = seeder(cfg, {{key(2), Role::Peer, "d1"}, {key(3), Role::Peer, "d1"}, {key(4), Role::Peer, "d2"}});
    CHECK(ask(*e, 1, 0, 0) == std::nullopt);  // a whole segment now waits on the uplink
    // A second peer of the domain asking for it: Later, not Busy (the holder
    // has other segments for it); another segment is served at once.
    CHECK(ask(*e, 2, 0, 1'000) == RejectReason::Later);
    CHECK(ask(*e, 2, 1, 1'000) == std::nullopt);
    // Another domain's device is not paced: the copy is its domain's import.
    CHECK(ask(*e, 3, 0, 1'000) == std::nullopt);
    // Once the pace has passed, the segment goes to the next peer.
    CHECK(ask(*e, 2, 0, 2'600) == std::nullopt);
}

TEST_CASE("engine: a device whose uplink is idle, or with pacing off, serves every peer at once") {
    for (Millis pace : {Millis{1'500}, Millis{0}}) {
        CAPTURE(pace);
        auto cfg = config(1, Role::Peer, "d1");
        cfg.peer_pace = pace;
        auto e = seeder(cfg, {{key(2), Role::Peer, "d1"}, {key(3), Role::Peer, "d1"}});
        CHECK(ask(*e, 1, 0, 0) == std::nullopt);
        if (pace) e->served(ConnId{1}, kId, Segment{0}, 0, Instant{100});  // through the uplink already
        CHECK(ask(*e, 2, 0, 200) == std::nullopt);
    }
}

TEST_CASE("engine: a device given an import share looks up other domains' holders at once, and only then") {
    Engine dev(config(1, Role::Peer, "d1"), 5);
    dev.add_patch(kId, kShape, Bitfield(kShape.segments), true, Instant{0});
    REQUIRE(dev.conn_up(ConnId{1}, PeerIdentity{key(2), Role::Super, "d1"}, true, Instant{0}));
    dev.tick(Instant{0});
    auto first = take<act::Lookup>(dev);
    REQUIRE_FALSE(first.empty());
    for (auto& l : first) CHECK_FALSE(l.far);
    dev.actions().clear();
    Bitfield share(kShape.segments);
    share.set(2);
    dev.on_assign(ConnId{1}, kId, share.to_bytes(), Instant{100});
    auto next = dev.next_deadline(Instant{100});
    REQUIRE(next);
    CHECK(next->ms <= 100);
    dev.tick(Instant{100});
    auto far = take<act::Lookup>(dev);
    REQUIRE(far.size() == 1);
    CHECK(far[0].far);
}
