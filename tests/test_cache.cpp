// Unit tests of the super-node cache's eviction plan (core/cache.hpp).
#include <doctest/doctest.h>

#include "core/cache.hpp"

using namespace ps;
using namespace ps::core;

namespace {
Hash32 h(std::uint8_t n) {
    Hash32 x{};
    x[0] = n;
    return x;
}
}  // namespace

TEST_CASE("cache: room is made by evicting the least recently used entries, and only as many as needed") {
    std::vector<CacheEntry> e{{h(1), 40, 300, false}, {h(2), 40, 100, false}, {h(3), 40, 200, false}};
    auto p = plan_eviction(e, 130, 40);  // 120 used + 40 > 130: one must go
    CHECK(p.fits);
    REQUIRE(p.evict.size() == 1);
    CHECK(p.evict[0] == h(2));  // used at 100, the oldest
    CHECK(p.used == 120);
    CHECK(p.freed == 40);

    auto two = plan_eviction(e, 90, 40);  // needs 70 freed: two entries, oldest first
    CHECK(two.fits);
    REQUIRE(two.evict.size() == 2);
    CHECK(two.evict[0] == h(2));
    CHECK(two.evict[1] == h(3));
}

TEST_CASE("cache: nothing is evicted when the new patch fits, or without a quota") {
    std::vector<CacheEntry> e{{h(1), 40, 300, false}};
    auto p = plan_eviction(e, 100, 60);
    CHECK(p.fits);
    CHECK(p.evict.empty());
    auto none = plan_eviction(e, 0, 1u << 30);
    CHECK(none.fits);
    CHECK(none.evict.empty());
}

TEST_CASE("cache: a pinned entry (downloading or being served) is never evicted, even when it is the oldest") {
    std::vector<CacheEntry> e{{h(1), 40, 100, true}, {h(2), 40, 200, false}, {h(3), 40, 300, false}};
    auto p = plan_eviction(e, 120, 40);
    CHECK(p.fits);
    REQUIRE(p.evict.size() == 1);
    CHECK(p.evict[0] == h(2));
    CHECK(p.pinned == 40);
}

TEST_CASE("cache: when even evicting every unpinned entry is not enough, nothing is evicted") {
    std::vector<CacheEntry> e{{h(1), 80, 100, true}, {h(2), 40, 200, false}};
    auto p = plan_eviction(e, 100, 40);  // 80 pinned + 40 > 100
    CHECK_FALSE(p.fits);
    CHECK(p.evict.empty());
    auto huge = plan_eviction({}, 100, 101);
    CHECK_FALSE(huge.fits);
}

TEST_CASE("cache: equal use times evict in id order, so the plan is deterministic") {
    std::vector<CacheEntry> e{{h(9), 10, 5, false}, {h(3), 10, 5, false}, {h(7), 10, 5, false}};
    auto p = plan_eviction(e, 30, 10);
    REQUIRE(p.evict.size() == 1);
    CHECK(p.evict[0] == h(3));
}
