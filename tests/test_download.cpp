// Unit tests of the sans-IO download core: no sockets, no clocks, explicit time.
#include <doctest/doctest.h>

#include <algorithm>

#include "core/download.hpp"
#include "core/policy.hpp"

using namespace ps;
using namespace ps::core;

namespace {

// Builds a bitfield from a string such as "1101" (1 = held).
Bitfield bits(const char* s) {
    Bitfield b(static_cast<std::uint32_t>(std::string_view(s).size()));
    for (std::uint32_t i = 0; s[i]; ++i)
        if (s[i] == '1') b.set(i);
    return b;
}

std::vector<Action> requests_of(const std::vector<Action>& v) {
    std::vector<Action> r;
    std::copy_if(v.begin(), v.end(), std::back_inserter(r), [](auto& a) { return a.kind == Action::Request; });
    return r;
}

// One segment, two same-domain holders of it, endgame after 1.5 s.
Download one_segment_two_holders() {
    Download d(1, {.pipeline_target = 0, .endgame_after = 1500}, 2);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::SameDomainPeer);
    d.peer_bitfield(1, bits("1"));
    d.peer_bitfield(2, bits("1"));
    return d;
}

}  // namespace

TEST_CASE("download: rarest segment is requested first") {
    Download d(4, {.max_requests_per_peer = 1, .pipeline_target = 0}, 1);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::SameDomainPeer);
    d.peer_bitfield(1, bits("1111"));
    d.peer_bitfield(2, bits("1101"));  // segment 2 is held by peer 1 only
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out.size() == 2);
    CHECK(out[0] == Action{Action::Request, 1, 2});
    CHECK(out[1].peer == 2);
}

TEST_CASE("download: nearest rung of the source ladder wins") {
    Download d(1, {.pipeline_target = 0}, 7);
    d.add_peer(10, SourceClass::Origin);
    d.add_peer(11, SourceClass::OtherDomain);
    d.add_peer(12, SourceClass::SameDomainSuper);
    for (PeerId p : {10, 11, 12}) d.peer_bitfield(p, bits("1"));
    std::vector<Action> out;
    d.pump(0, out);
    CHECK(out == std::vector<Action>{{Action::Request, 12, 0}});
    // A late endgame duplicate never goes down the ladder: no second super here.
    out.clear();
    d.pump(5000, out);
    CHECK(out.empty());
    d.add_peer(13, SourceClass::SameDomainPeer, 5000);
    d.peer_bitfield(13, bits("1"));
    d.pump(5001, out);
    CHECK(out == std::vector<Action>{{Action::Request, 13, 0}});
}

TEST_CASE("download: full pipelines wait, and a busy nearer holder sends requests down the ladder") {
    Download d(4, {.max_requests_per_peer = 2, .pipeline_target = 0, .busy_backoff = 1000, .rung_delay = {}}, 3);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::Origin);
    d.peer_bitfield(1, bits("1111"));
    d.peer_bitfield(2, bits("1111"));
    std::vector<Action> out;
    d.pump(0, out);
    auto r = requests_of(out);
    REQUIRE(r.size() == 2);
    CHECK(r[0].peer == 1);
    CHECK(r[1].peer == 1);
    // The same-domain peer answers busy: now the origin is asked.
    d.rejected(1, r[0].segment, RejectReason::Busy, 10);
    out.clear();
    d.pump(10, out);
    r = requests_of(out);
    REQUIRE(r.size() == 2);
    CHECK(r[0].peer == 2);
    CHECK(r[1].peer == 2);
}

TEST_CASE("download: a segment only a farther rung holds is taken from there at once") {
    Download d(2, {.max_requests_per_peer = 4, .pipeline_target = 0, .rung_delay = {}}, 3);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::Origin);
    d.peer_bitfield(1, bits("10"));
    d.peer_bitfield(2, bits("11"));
    std::vector<Action> out;
    d.pump(0, out);
    CHECK(std::count(out.begin(), out.end(), Action{Action::Request, 1, 0}) == 1);
    CHECK(std::count(out.begin(), out.end(), Action{Action::Request, 2, 1}) == 1);
    CHECK(out.size() == 2);
}

TEST_CASE("download: the origin is left alone at first, so nearer holders found at once get the work") {
    Download d(2, {.pipeline_target = 0, .rung_delay = {0, 0, 250, 750}}, 3);
    d.add_peer(2, SourceClass::Origin, 0);
    d.peer_bitfield(2, bits("11"));
    std::vector<Action> out;
    d.pump(0, out);
    CHECK(out.empty());
    d.add_peer(1, SourceClass::SameDomainSuper, 100);  // its handshake finished 100 ms later
    d.peer_bitfield(1, bits("11"));
    d.tick(100, out);
    CHECK(requests_of(out).size() == 2);
    CHECK(requests_of(out)[0].peer == 1);
    // Alone, the origin is asked once its delay has passed.
    Download e(1, {.rung_delay = {0, 0, 250, 750}}, 3);
    e.add_peer(2, SourceClass::Origin, 0);
    e.peer_bitfield(2, bits("1"));
    out.clear();
    e.tick(0, out);
    e.tick(749, out);
    CHECK(out.empty());
    e.tick(750, out);
    CHECK(out == std::vector<Action>{{Action::Request, 2, 0}});
}

TEST_CASE("download: farther rungs wait while a nearer holder is still connecting, within a bound") {
    Download d(1, {.pipeline_target = 0, .rung_delay = {}, .connect_wait = 3000}, 3);
    d.set_connecting({0, 1, 0, 0});  // our super-node's handshake is under way
    d.add_peer(2, SourceClass::OtherDomain, 0);
    d.peer_bitfield(2, bits("1"));
    std::vector<Action> out;
    d.pump(1000, out);
    CHECK(out.empty());
    d.pump(3000, out);  // it never arrived: go on without it
    CHECK(out == std::vector<Action>{{Action::Request, 2, 0}});
}

TEST_CASE("download: a segment failing its hash bans the sender and goes elsewhere") {
    Download d(1, {.max_requests_per_peer = 1, .pipeline_target = 0, .max_requests_per_segment_endgame = 1, .rung_delay = {}}, 5);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::Origin);
    d.peer_bitfield(1, bits("1"));
    d.peer_bitfield(2, bits("1"));
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out == std::vector<Action>{{Action::Request, 1, 0}});
    out.clear();
    d.segment_done(1, 0, false, out);
    CHECK(d.is_banned(1));
    CHECK_FALSE(d.held().test(0));
    CHECK(d.availability(0) == 1);
    d.pump(1, out);
    CHECK(out == std::vector<Action>{{Action::Request, 2, 0}});
    out.clear();
    d.segment_done(2, 0, true, out);
    CHECK(d.complete());
}

TEST_CASE("download: a stalled holder costs one timeout, then is avoided") {
    Download d(2, {.max_requests_per_peer = 2, .pipeline_target = 0, .endgame_after = 5000, .request_timeout = 1000, .stall_backoff = 60000}, 9);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::Origin);
    d.peer_bitfield(1, bits("11"));
    d.peer_bitfield(2, bits("11"));
    std::vector<Action> out;
    d.pump(0, out);
    auto r = requests_of(out);
    REQUIRE(r.size() == 2);
    CHECK(r[0].peer == 1);
    CHECK(r[1].peer == 1);
    out.clear();
    d.tick(999, out);
    CHECK(out.empty());
    d.tick(1000, out);
    // Both requests to peer 1 cancelled and re-sent to the origin.
    CHECK(std::count(out.begin(), out.end(), Action{Action::Cancel, 1, 0}) == 1);
    CHECK(std::count(out.begin(), out.end(), Action{Action::Cancel, 1, 1}) == 1);
    CHECK(std::count(out.begin(), out.end(), Action{Action::Request, 2, 0}) == 1);
    CHECK(std::count(out.begin(), out.end(), Action{Action::Request, 2, 1}) == 1);
}

TEST_CASE("download: a holder that keeps sending is not timed out, however deep its queue") {
    Download d(3, {.max_requests_per_peer = 3, .pipeline_target = 0, .endgame_after = 100000, .request_timeout = 1000, .rung_delay = {}}, 9);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.peer_bitfield(1, bits("111"));
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out.size() == 3);
    out.clear();
    // Segment after segment arrives slowly; bytes keep flowing all the time.
    d.progress(1, 900);
    d.segment_done(1, out.size() ? 0 : 0, true, out);
    d.progress(1, 1800);
    d.tick(1800, out);
    CHECK(std::count_if(out.begin(), out.end(), [](auto& a) { return a.kind == Action::Cancel; }) == 0);
    // Silence for a whole timeout: now it is stalled.
    d.tick(2800, out);
    CHECK(std::count_if(out.begin(), out.end(), [](auto& a) { return a.kind == Action::Cancel; }) == 2);
}

TEST_CASE("download: endgame duplicate is cancelled when the first copy lands") {
    Download d = one_segment_two_holders();
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out.size() == 1);
    d.pump(1499, out);
    REQUIRE(out.size() == 1);
    d.pump(1500, out);
    REQUIRE(out.size() == 2);
    PeerId first = out[0].peer, second = out[1].peer;
    CHECK(first != second);
    out.clear();
    d.segment_done(second, 0, true, out);
    CHECK(out == std::vector<Action>{{Action::Cancel, first, 0}});
    CHECK(d.in_flight() == 0);
}

TEST_CASE("download: busy holder is backed off, and not-held updates availability") {
    Download d(2, {.max_requests_per_peer = 1, .pipeline_target = 0, .busy_backoff = 100}, 4);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.peer_bitfield(1, bits("11"));
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out.size() == 1);
    auto seg = out[0].segment;
    d.rejected(1, seg, RejectReason::Busy, 0);
    out.clear();
    d.pump(50, out);
    CHECK(out.empty());
    d.pump(100, out);
    REQUIRE(out.size() == 1);
    d.rejected(1, out[0].segment, RejectReason::NotHeld, 100);
    CHECK(d.availability(out[0].segment) == 0);
}

TEST_CASE("download: Later keeps the holder busy with other segments and asks it again for that one after later_wait") {
    Download d(2, {.max_requests_per_peer = 1, .pipeline_target = 0, .busy_backoff = 100, .later_wait = 2'000}, 4);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.peer_bitfield(1, bits("11"));
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out.size() == 1);
    auto seg = out[0].segment;
    d.rejected(1, seg, RejectReason::Later, 0);
    CHECK(d.availability(seg) == 0);
    // Not backed off: the other segment is asked of it at once.
    out.clear();
    d.pump(1, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].segment == 1 - seg);
    CHECK(out[0].peer == 1);
    // A deadline is due when the wait ends, and the segment is asked again then.
    d.segment_done(1, 1 - seg, true, out);
    out.clear();
    auto next = d.next_deadline(1'500);  // past the rung delays
    REQUIRE(next);
    CHECK(*next == 2'000);
    d.pump(1'999, out);
    CHECK(out.empty());
    d.pump(2'000, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].segment == seg);
    CHECK(d.availability(seg) == 1);
}

TEST_CASE("download: requests in flight are capped across holders") {
    Download d(64, {.max_requests_per_peer = 4, .max_requests_total = 6, .pipeline_target = 0}, 8);
    for (PeerId p = 1; p <= 4; ++p) {
        d.add_peer(p, SourceClass::SameDomainPeer);
        d.peer_bitfield(p, Bitfield(64, true));
    }
    std::vector<Action> out;
    d.pump(0, out);
    CHECK(out.size() == 6);
    CHECK(d.in_flight() == 6);
}

TEST_CASE("download: removing a peer frees its requests") {
    Download d(3, {.pipeline_target = 0}, 8);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.peer_bitfield(1, bits("111"));
    std::vector<Action> out;
    d.pump(0, out);
    CHECK(d.in_flight() == 3);
    d.remove_peer(1);
    CHECK(d.in_flight() == 0);
    CHECK(d.availability(0) == 0);
}

TEST_CASE("download: same seed gives the same order, another seed spreads") {
    auto order = [](std::uint64_t seed) {
        Download d(64, {.max_requests_per_peer = 64, .pipeline_target = 0, .max_requests_per_segment_endgame = 1}, seed);
        d.add_peer(1, SourceClass::SameDomainPeer);
        d.peer_bitfield(1, Bitfield(64, true));
        std::vector<Action> out;
        d.pump(0, out);
        return out;
    };
    CHECK(order(42) == order(42));
    CHECK(order(42) != order(43));
}

TEST_CASE("policies: seeding stops at the ratio or the time limit") {
    SeedPolicy sp{.ratio = 1.0, .max_seconds = 60};
    CHECK(sp.keep_seeding(10, 100, 1));
    CHECK_FALSE(sp.keep_seeding(100, 100, 1));
    CHECK_FALSE(sp.keep_seeding(0, 100, 60));
    CHECK_FALSE(SeedPolicy{.ratio = 0}.keep_seeding(0, 100, 0));
}

TEST_CASE("policies: token bucket admits the configured rate, with overdraft repaid") {
    TokenBucket b(1000, 1000);  // 1000 B/s
    CHECK(b.ready(0));
    b.spend(0, 3000);  // a 3000-byte segment overdraws by 3000
    CHECK_FALSE(b.ready(2000));
    CHECK(b.wait(2000) == 1001);
    CHECK(b.ready(3000));
    b.spend(3000, 500);
    CHECK_FALSE(b.ready(3499));
    CHECK(b.ready(3500));
    // Idle time banks at most one burst.
    CHECK(b.ready(100000));
    b.spend(100000, 1500);
    CHECK_FALSE(b.ready(100000));
    TokenBucket open;
    CHECK(open.ready(0));
}

TEST_CASE("uploads: slots are limited, queues bounded, reasons given") {
    Uploads u({.slots = 2, .max_queued_per_peer = 2});
    CHECK(u.request(1, 10, true, false) == Uploads::Verdict::Queued);
    CHECK(u.request(2, 20, true, false) == Uploads::Verdict::Queued);
    CHECK(u.request(3, 30, true, false) == Uploads::Verdict::Busy);  // no free slot
    CHECK(u.request(1, 11, true, false) == Uploads::Verdict::Queued);
    CHECK(u.request(1, 12, true, false) == Uploads::Verdict::Busy);  // queue full
    CHECK(u.request(2, 21, false, false) == Uploads::Verdict::NotHeld);
    CHECK(u.request(2, 22, true, true) == Uploads::Verdict::Banned);
}

TEST_CASE("uploads: requesters are served round-robin, skipping congested links") {
    Uploads u({.slots = 8, .max_queued_per_peer = 8});
    for (std::uint64_t i = 0; i < 3; ++i) u.request(1, 100 + i, true, false);
    u.request(2, 200, true, false);
    u.request(3, 300, true, false);
    auto all = [](PeerId) { return true; };
    std::vector<Uploads::Item> order;
    while (auto it = u.next(0, all)) order.push_back(*it);
    CHECK(order == std::vector<Uploads::Item>{{1, 100}, {2, 200}, {3, 300}, {1, 101}, {1, 102}});
    u.request(1, 1, true, false);
    u.request(2, 2, true, false);
    auto it = u.next(0, [](PeerId p) { return p != 2; });
    REQUIRE(it);
    CHECK(it->peer == 1);
    CHECK_FALSE(u.next(0, [](PeerId p) { return p != 2; }));
    CHECK(u.active_peers() == 1);
}

TEST_CASE("uploads: the rate limit holds sends until the bucket refills") {
    Uploads u;
    u.set_rate(0, 1'000'000, 1'000'000);  // 1 MB/s
    for (std::uint64_t i = 0; i < 3; ++i) u.request(1, i, true, false);
    auto all = [](PeerId) { return true; };
    REQUIRE(u.next(0, all));
    u.sent(0, 1'000'000);
    CHECK_FALSE(u.next(500, all));
    CHECK(u.wait(500) == 501);
    REQUIRE(u.next(1000, all));
    u.sent(1000, 1'000'000);
    CHECK_FALSE(u.next(1999, all));
    CHECK(u.next(2000, all));
}

TEST_CASE("uploads: reserved slots stay open for priority requesters (super-nodes at the origin)") {
    Uploads u({.slots = 3, .max_queued_per_peer = 8, .reserved_for_priority = 2});
    CHECK(u.request(1, 1, true, false) == Uploads::Verdict::Queued);
    CHECK(u.request(2, 1, true, false) == Uploads::Verdict::Busy);
    CHECK(u.request(3, 1, true, false, true) == Uploads::Verdict::Queued);
    CHECK(u.request(4, 1, true, false, true) == Uploads::Verdict::Queued);
    CHECK(u.request(5, 1, true, false, true) == Uploads::Verdict::Busy);
}

TEST_CASE("super-seeding: a segment goes out once per reserve period") {
    SuperSeeding ss(3, 1000);
    CHECK(ss.allow(0, 0));
    ss.served(0, 0);
    CHECK_FALSE(ss.allow(0, 999));
    CHECK(ss.allow(1, 999));
    CHECK(ss.allow(0, 1000));
    CHECK_FALSE(ss.allow(7, 0));
    CHECK(ss.served_count() == 1);
}

TEST_CASE("download: local_first asks other domains and the origin only while nothing comes from the own domain") {
    for (bool local_first : {false, true}) {
        CAPTURE(local_first);
        Download d(4, {.pipeline_target = 0, .rung_delay = {}, .local_first = local_first}, 5);
        d.add_peer(1, SourceClass::SameDomainSuper);
        d.add_peer(2, SourceClass::Origin);
        d.peer_bitfield(1, bits("1100"));  // the super-node is still downloading
        d.peer_bitfield(2, bits("1111"));
        std::vector<Action> out;
        d.pump(0, out);
        auto r = requests_of(out);
        std::size_t to_origin = std::count_if(r.begin(), r.end(), [](auto& a) { return a.peer == 2; });
        std::size_t to_super = std::count_if(r.begin(), r.end(), [](auto& a) { return a.peer == 1; });
        CHECK(to_super == 2);
        CHECK(to_origin == (local_first ? 0u : 2u));
        if (!local_first) continue;
        // The super-node gets segment 2 meanwhile: it is asked, still not the origin.
        out.clear();
        d.peer_has(1, 2);
        d.pump(10, out);
        CHECK(requests_of(out) == std::vector<Action>{{Action::Request, 1, 2}});
        // Nothing more is on its way from the domain, but the super-node got a
        // segment less than local_super_wait (2 s) ago: wait for it.
        out.clear();
        for (std::uint32_t s : {0u, 1u, 2u}) d.segment_done(1, s, true, out);
        out.clear();
        d.pump(20, out);
        CHECK(requests_of(out).empty());
        d.pump(1900, out);
        CHECK(requests_of(out).empty());
        // It has gained nothing for 2 s: the origin is asked.
        d.pump(2100, out);
        CHECK(requests_of(out) == std::vector<Action>{{Action::Request, 2, 3}});
    }
}

TEST_CASE("download: with local_first, a device that meets only other domains waits local_far_delay before asking them") {
    Download d(2, {.pipeline_target = 0, .rung_delay = {}, .local_first = true, .local_far_delay = 1500}, 9);
    d.add_peer(1, SourceClass::OtherDomain, 100);
    d.peer_bitfield(1, bits("11"));
    std::vector<Action> out;
    d.pump(100, out);
    d.pump(1500, out);
    CHECK(requests_of(out).empty());  // its own super-node may still turn up
    d.pump(1600, out);
    CHECK(requests_of(out).size() == 2);
    // Without local_first (a super-node), no wait.
    Download s(2, {.pipeline_target = 0, .rung_delay = {}}, 9);
    s.add_peer(1, SourceClass::OtherDomain, 100);
    s.peer_bitfield(1, bits("11"));
    out.clear();
    s.pump(100, out);
    CHECK(requests_of(out).size() == 2);
}

TEST_CASE("download: endgame leaves alone a holder that keeps sending") {
    Download d = one_segment_two_holders();
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out.size() == 1);
    PeerId first = out[0].peer;
    for (Millis t = 500; t <= 6000; t += 500) {  // slow but steady
        d.progress(first, t, 64 * 1024);
        d.pump(t, out);
    }
    CHECK(out.size() == 1);
    d.pump(7'499, out);
    CHECK(out.size() == 1);
    d.pump(7'500, out);  // silent for endgame_after: now it is doubled
    CHECK(out.size() == 2);
}

TEST_CASE("download: requests in flight to a holder follow its measured rate") {
    // 1 MiB segments; pipeline_target 1.5 s of the holder's rate, 1..4.
    Download d(32, {.max_requests_per_peer = 4, .max_requests_total = 16, .pipeline_target = 1500, .rung_delay = {}}, 3);
    d.set_segment_bytes(1u << 20);
    d.add_peer(1, SourceClass::SameDomainPeer);
    d.add_peer(2, SourceClass::SameDomainPeer);
    Bitfield all(32, true);
    d.peer_bitfield(1, all);
    d.peer_bitfield(2, all);
    std::vector<Action> out;
    d.pump(0, out);
    auto count = [&](PeerId p) {
        std::size_t n = 0;
        for (std::uint32_t s = 0; s < 32; ++s) n += d.is_requested(p, s);
        return n;
    };
    CHECK(count(1) == 1);  // unmeasured: one request each
    CHECK(count(2) == 1);
    // Holder 1 delivers 4 MB/s (6 MiB in 1.5 s: the full pipeline), holder 2 125 kB/s.
    for (Millis t = 100; t <= 1000; t += 100) {
        d.progress(1, t, 400'000);
        d.progress(2, t, 12'500);
    }
    d.pump(1000, out);
    CHECK(count(1) == 4);
    CHECK(count(2) == 1);
}

TEST_CASE("download: a holder trickling bytes costs one request timeout, then the segment goes elsewhere") {
    Download d(1, {.pipeline_target = 0, .request_timeout = 10'000, .rung_delay = {}}, 4);
    d.add_peer(1, SourceClass::SameDomainPeer);  // the trickler, nearest
    d.add_peer(2, SourceClass::Origin);
    d.peer_bitfield(1, bits("1"));
    d.peer_bitfield(2, bits("1"));
    std::vector<Action> out;
    d.pump(0, out);
    REQUIRE(out == std::vector<Action>{{Action::Request, 1, 0}});
    out.clear();
    // One byte every five seconds: bytes arrive, but far below any useful rate.
    for (Millis t = 5'000; t < 10'000; t += 5'000) {
        d.progress(1, t, 1);
        d.expire(t, out);
        d.pump(t, out);
    }
    CHECK(out.empty());
    d.progress(1, 10'000, 1);
    d.expire(10'000, out);
    d.pump(10'000, out);
    CHECK(out == std::vector<Action>{{Action::Cancel, 1, 0}, {Action::Request, 2, 0}});
}
