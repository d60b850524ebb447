// Bitfield's inline and heap storage, and the engine's 32-byte key order.
#include <doctest/doctest.h>

#include <functional>

#include "core/bitfield.hpp"
#include "core/engine.hpp"
#include "core/rng.hpp"

using namespace ps;

TEST_CASE("bitfield: sets below, at and past the inline words behave alike") {
    for (std::uint32_t n : {1u, 63u, 64u, 65u, 127u, 128u, 129u, 200u, 1000u}) {
        CAPTURE(n);
        Bitfield b(n);
        for (std::uint32_t i = 0; i < n; i += 3) b.set(i);
        std::uint32_t want = (n + 2) / 3;
        CHECK(b.count() == want);
        CHECK(b.words().size() == (n + 63) / 64);
        for (std::uint32_t i = 0; i < n; ++i) CHECK(b.test(i) == (i % 3 == 0));
        CHECK_FALSE(b.test(n));  // past the end
        auto back = Bitfield::from_bytes(b.to_bytes(), n);
        REQUIRE(back);
        CHECK(*back == b);
        Bitfield copy = b;
        CHECK(copy == b);
        copy.reset(0);
        CHECK_FALSE(copy == b);
        CHECK(b.test(0));  // the copy has its own words
        Bitfield full(n, true);
        CHECK(full.all());
        CHECK(full.count() == n);
        CHECK_FALSE(Bitfield(n) == Bitfield(n + 1));
    }
}

TEST_CASE("engine keys: KeyLess orders 32-byte keys as std::array's operator< does") {
    Rng rng(5);
    std::vector<Hash32> keys(200);
    for (auto& k : keys)
        for (auto& b : k) b = static_cast<std::uint8_t>(rng.below(3));  // small alphabet: long common prefixes
    keys.push_back(keys[0]);
    core::KeyLess less;
    for (auto& a : keys)
        for (auto& b : keys) {
            CHECK(less(a, b) == std::less<Hash32>{}(a, b));
            CHECK(core::KeyLess::equal(a, b) == (a == b));
            CHECK(less(std::pair{a, 1u}, std::pair{b, 2u}) == (std::pair{a, 1u} < std::pair{b, 2u}));
        }
}

TEST_CASE("engine keys: a PatchSet keeps several patches apart and erases any of them") {
    Hash32 a{}, b{}, c{};
    a[31] = 1;
    b[0] = 1;
    c[5] = 9;
    core::PatchSet s;
    CHECK_FALSE(s.count(a));
    CHECK(s.insert(a));
    CHECK_FALSE(s.insert(a));
    CHECK(s.insert(b));
    CHECK(s.insert(c));
    s.erase(a);  // the first one: another takes its place
    CHECK_FALSE(s.count(a));
    CHECK(s.count(b));
    CHECK(s.count(c));
    s.erase(c);
    CHECK(s.count(b));
    CHECK_FALSE(s.count(c));
    s.erase(b);
    CHECK_FALSE(s.count(b));
    CHECK(s.insert(c));
    CHECK(s.count(c));
}
