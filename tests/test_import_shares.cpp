// A domain's coordinated import: core::ImportShares on its own, then a
// super-node's engine handing shares to its devices and a device's engine
// fetching afar only its share.
#include <doctest/doctest.h>

#include <map>
#include <vector>

#include "core/engine.hpp"
#include "engine_support.hpp"
#include "core/import_shares.hpp"

using namespace ps;
using namespace ps::core;

namespace {

NodeKey key(std::uint8_t b) {
    NodeKey k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(b * 31 + i * 7);
    return k;
}

const PatchId kId = [] {
    PatchId p{};
    p.fill(3);
    return p;
}();

constexpr std::uint32_t kSegs = 64;
constexpr PatchShape kShape{kSegs, 1u << 20, std::uint64_t{kSegs} << 20};

EngineConfig config(std::uint8_t self, Role role, const std::string& domain) {
    return testing::config(key(self), role, domain);
}

using testing::take;

}  // namespace

TEST_CASE("import shares: every lacking segment goes to exactly one member, and only lacking ones") {
    std::vector<NodeKey> members{key(1), key(2), key(3), key(4)};
    Bitfield lacking(kSegs, true);
    for (std::uint32_t s = 0; s < kSegs; s += 5) lacking.reset(s);
    ImportShares shares(kSegs, 10'000);
    shares.assign(members, lacking, Bitfield(kSegs), 0);
    std::vector<std::uint32_t> per(members.size());
    for (std::uint32_t s = 0; s < kSegs; ++s) {
        int owners = 0;
        for (std::size_t i = 0; i < members.size(); ++i)
            if (shares.share_of(i).test(s)) {
                ++owners;
                ++per[i];
            }
        CHECK(owners == (lacking.test(s) ? 1 : 0));
    }
    for (auto n : per) CHECK(n > 0);  // spread, not all on one member
}

TEST_CASE("import shares: a member leaving moves only its own segments") {
    std::vector<NodeKey> members{key(1), key(2), key(3), key(4)};
    Bitfield lacking(kSegs, true);
    ImportShares shares(kSegs, 10'000);
    shares.assign(members, lacking, Bitfield(kSegs), 0);
    auto before1 = shares.share_of(1), before3 = shares.share_of(3);
    std::vector<NodeKey> fewer{key(1), key(2), key(4)};  // key(3) left
    shares.assign(fewer, lacking, Bitfield(kSegs), 100);
    auto after1 = shares.share_of(1);
    for (std::uint32_t s = 0; s < kSegs; ++s)
        if (before1.test(s)) CHECK(after1.test(s));  // what key(2) had, it keeps
    std::uint32_t moved = 0;
    for (std::uint32_t s = 0; s < kSegs; ++s) moved += before3.test(s);
    CHECK(shares.share_of(0).count() + after1.count() + shares.share_of(2).count() == kSegs);
    CHECK(moved > 0);
}

TEST_CASE("import shares: a segment its member did not bring in is taken over by the coordinator") {
    std::vector<NodeKey> members{key(1), key(2)};
    Bitfield lacking(kSegs, true);
    ImportShares shares(kSegs, 10'000);
    shares.assign(members, lacking, Bitfield(kSegs), 0);
    auto theirs = shares.share_of(1);
    REQUIRE(theirs.count() > 0);
    REQUIRE(shares.next_deadline() == 10'000u);
    shares.assign(members, lacking, Bitfield(kSegs), 9'999);
    CHECK(shares.share_of(1) == theirs);
    CHECK(shares.taken_over() == 0);
    shares.assign(members, lacking, Bitfield(kSegs), 10'000);
    CHECK(shares.share_of(1).none());
    CHECK(shares.share_of(0).count() == kSegs);
    CHECK(shares.taken_over() == theirs.count());
    CHECK_FALSE(shares.next_deadline().has_value());
}

TEST_CASE("engine: a super-node hands each downloading device of its domain a share, and a device fetches afar only its share") {
    // The super-node and a device of domain d1, another device of d1, the origin.
    Engine sup(config(10, Role::Super, "d1"), 1);
    sup.add_patch(kId, kShape, Bitfield(kSegs), true, Instant{0});
    sup.actions().clear();
    Bitfield none(kSegs);
    REQUIRE(sup.conn_up(ConnId{1}, {key(1), Role::Peer, "d1"}, false, Instant{0}));
    REQUIRE(sup.conn_up(ConnId{2}, {key(2), Role::Peer, "d1"}, false, Instant{0}));
    REQUIRE(sup.conn_up(ConnId{3}, {key(3), Role::Peer, "d2"}, false, Instant{0}));  // another domain's device
    sup.actions().clear();
    for (int c = 1; c <= 3; ++c) sup.on_have(ConnId{std::uint64_t(c)}, kId, none.to_bytes(), Instant{1});
    // The latest share each device was told (the first one's changed when the second joined).
    std::map<ConnId, act::SendAssign> last;
    for (auto& a : take<act::SendAssign>(sup)) last.insert_or_assign(a.conn, a);
    REQUIRE(last.size() == 2);  // to the two devices of d1, not to d2's
    std::vector<act::SendAssign> assigns;
    for (auto& [c, a] : last) assigns.push_back(a);
    Bitfield union_(kSegs);
    std::uint32_t total = 0;
    for (auto& a : assigns) {
        CHECK(a.conn != ConnId{3});
        auto bf = Bitfield::from_bytes(a.share, kSegs);
        REQUIRE(bf);
        CHECK(bf->count() > 0);
        CHECK(bf->count() < kSegs);
        total += bf->count();
        for (std::uint32_t s = 0; s < kSegs; ++s)
            if (bf->test(s)) union_.set(s);
    }
    CHECK(union_.count() == total);  // no segment in two shares
    CHECK(total < kSegs);            // the super-node keeps a share of its own

    // A device told its share asks the origin for that share only.
    auto& mine = assigns.front();
    auto share = *Bitfield::from_bytes(mine.share, kSegs);
    Engine dev(config(1, Role::Peer, "d1"), 2);
    dev.add_patch(kId, kShape, Bitfield(kSegs), true, Instant{0});
    REQUIRE(dev.conn_up(ConnId{10}, {key(10), Role::Super, "d1"}, true, Instant{0}));
    REQUIRE(dev.conn_up(ConnId{11}, {key(99), Role::Origin, "core"}, true, Instant{0}));
    dev.on_have(ConnId{10}, kId, none.to_bytes(), Instant{0});
    dev.on_assign(ConnId{10}, kId, mine.share, Instant{0});
    dev.on_have(ConnId{11}, kId, Bitfield(kSegs, true).to_bytes(), Instant{0});
    dev.actions().clear();
    Bitfield asked(kSegs);
    for (Millis t = 0; t < 20'000; t += 100) {
        dev.tick(Instant{t});
        // The origin answers at once: each segment asked for arrives whole and
        // is stored, which may ask for the next.
        for (auto reqs = take<act::SendRequest>(dev); !reqs.empty(); reqs = take<act::SendRequest>(dev)) {
            dev.actions().clear();
            for (auto& r : reqs) {
                CHECK(r.conn == ConnId{11});
                CHECK(share.test(idx(r.seg)));
                asked.set(idx(r.seg));
                REQUIRE(dev.on_data(r.conn, kId, r.seg, 0, kShape.length(idx(r.seg)), Instant{t}) == DataVerdict::TakeLast);
                dev.stored(r.conn, kId, r.seg, StoreOutcome::Stored, Instant{t});
            }
        }
        dev.actions().clear();
    }
    INFO("asked ", asked.count(), " of a share of ", share.count());
    CHECK(asked == share);  // all of its share, nothing else, although the origin holds everything

    // The super-node gone, the device decides alone again: it climbs to the origin for the rest.
    dev.actions().clear();
    dev.conn_down(ConnId{10}, Instant{20'000});
    bool beyond = false;
    for (Millis t = 20'000; t < 40'000 && !beyond; t += 100) {
        dev.tick(Instant{t});
        for (auto& r : take<act::SendRequest>(dev)) beyond |= !share.test(idx(r.seg));
        dev.actions().clear();
    }
    CHECK(beyond);
}

TEST_CASE("engine: an Assign from anyone but the own domain's super-node is ignored, and a malformed one closes") {
    Engine dev(config(1, Role::Peer, "d1"), 2);
    dev.add_patch(kId, kShape, Bitfield(kSegs), true, Instant{0});
    REQUIRE(dev.conn_up(ConnId{10}, {key(10), Role::Super, "d2"}, true, Instant{0}));  // another domain's
    REQUIRE(dev.conn_up(ConnId{11}, {key(11), Role::Peer, "d1"}, true, Instant{0}));   // a fellow device
    REQUIRE(dev.conn_up(ConnId{12}, {key(99), Role::Origin, "core"}, true, Instant{0}));
    dev.on_have(ConnId{12}, kId, Bitfield(kSegs, true).to_bytes(), Instant{0});
    Bitfield everything(kSegs, true);
    dev.on_assign(ConnId{10}, kId, everything.to_bytes(), Instant{0});
    dev.on_assign(ConnId{11}, kId, everything.to_bytes(), Instant{0});
    dev.actions().clear();
    // Uncoordinated, a device waits local_far_delay before going afar at
    // all; an accepted Assign of everything would not have made it wait.
    dev.tick(Instant{100});
    CHECK(take<act::SendRequest>(dev).empty());
    dev.on_assign(ConnId{11}, kId, Bytes{1, 2, 3}, Instant{200});
    auto closes = take<act::Close>(dev);
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].conn == ConnId{11});
}

TEST_CASE("engine: a super-node whose uplink outruns all its devices together does not share the import") {
    auto cfg = config(10, Role::Super, "d1");
    cfg.uplink_capacity = 125'000'000;  // 1 Gbit/s
    cfg.device_uplink = 1'000'000;      // 8 Mbit/s
    Engine sup(cfg, 1);
    sup.add_patch(kId, kShape, Bitfield(kSegs), true, Instant{0});
    Bitfield none(kSegs);
    for (std::uint8_t d = 1; d <= 3; ++d) {
        REQUIRE(sup.conn_up(ConnId{d}, {key(d), Role::Peer, "d1"}, false, Instant{0}));
        sup.on_have(ConnId{d}, kId, none.to_bytes(), Instant{1});
    }
    REQUIRE(sup.conn_up(ConnId{9}, {key(99), Role::Origin, "core"}, true, Instant{0}));
    sup.actions().clear();
    sup.on_have(ConnId{9}, kId, Bitfield(kSegs, true).to_bytes(), Instant{1});
    for (Millis t = 0; t < 5'000; t += 500) sup.tick(Instant{t});
    CHECK(take<act::SendAssign>(sup).empty());
    CHECK_FALSE(take<act::SendRequest>(sup).empty());  // it fetches afar itself

    // The same super-node on an uplink like its devices' shares it.
    auto slow = config(10, Role::Super, "d1");
    slow.uplink_capacity = slow.device_uplink = 1'000'000;
    Engine s2(slow, 1);
    s2.add_patch(kId, kShape, Bitfield(kSegs), true, Instant{0});
    for (std::uint8_t d = 1; d <= 3; ++d) {
        REQUIRE(s2.conn_up(ConnId{d}, {key(d), Role::Peer, "d1"}, false, Instant{0}));
        s2.on_have(ConnId{d}, kId, none.to_bytes(), Instant{1});
    }
    CHECK_FALSE(take<act::SendAssign>(s2).empty());
}

TEST_CASE("engine: an empty Assign releases a device, which decides alone again") {
    Engine dev(config(1, Role::Peer, "d1"), 2);
    dev.add_patch(kId, kShape, Bitfield(kSegs), true, Instant{0});
    REQUIRE(dev.conn_up(ConnId{10}, {key(10), Role::Super, "d1"}, true, Instant{0}));
    REQUIRE(dev.conn_up(ConnId{11}, {key(99), Role::Origin, "core"}, true, Instant{0}));
    Bitfield none(kSegs);
    dev.on_have(ConnId{10}, kId, none.to_bytes(), Instant{0});
    dev.on_assign(ConnId{10}, kId, none.to_bytes(), Instant{0});  // coordinated, nothing to fetch afar
    dev.on_have(ConnId{11}, kId, Bitfield(kSegs, true).to_bytes(), Instant{0});
    dev.actions().clear();
    for (Millis t = 0; t < 10'000; t += 100) dev.tick(Instant{t});
    CHECK(take<act::SendRequest>(dev).empty());
    dev.on_assign(ConnId{10}, kId, Bytes{}, Instant{10'000});
    for (Millis t = 10'000; t < 20'000; t += 100) dev.tick(Instant{t});
    CHECK_FALSE(take<act::SendRequest>(dev).empty());  // to the origin, nothing coming from the domain
}

TEST_CASE("engine: a super-node spares its busy uplink while its devices outrun it, not once enough of them left") {
    auto cfg = config(10, Role::Super, "d1");
    cfg.uplink_capacity = 2'000'000;
    cfg.device_uplink = 1'000'000;  // the uplink is worth two devices
    cfg.superseed_reserve = 10'000;
    Engine sup(cfg, 1);
    sup.add_patch(kId, kShape, Bitfield(kSegs, true), false, Instant{0});
    for (std::uint8_t d = 1; d <= 3; ++d) REQUIRE(sup.conn_up(ConnId{d}, {key(d), Role::Peer, "d1"}, false, Instant{0}));
    sup.actions().clear();
    sup.on_request(ConnId{1}, kId, Segment{0}, Instant{0});
    REQUIRE(take<act::Serve>(sup).size() == 1);  // still being read: the uplink is busy
    sup.actions().clear();
    // Three devices outrun the uplink: the segment waits for its reserve period.
    sup.on_request(ConnId{2}, kId, Segment{0}, Instant{100});
    auto rej = take<act::SendReject>(sup);
    REQUIRE(rej.size() == 1);
    CHECK(rej[0].reason == RejectReason::Busy);
    // With two left, the uplink carries as much as they could: it serves.
    sup.conn_down(ConnId{3}, Instant{200});
    sup.actions().clear();
    sup.on_request(ConnId{2}, kId, Segment{0}, Instant{300});
    CHECK(take<act::Serve>(sup).size() == 1);
}
