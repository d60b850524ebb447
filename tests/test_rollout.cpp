// core/rollout (the wave decision) and the manifest's rollout fields: which
// devices a wave selects, that widening only adds, the parser's and the
// decoder's errors, and that manifests without the fields are unchanged.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/rng.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "wire/manifest.hpp"

using namespace ps;

namespace {

Hash32 random_hash(Rng& rng) {
    Hash32 h;
    for (std::size_t i = 0; i < h.size(); i += 8) {
        std::uint64_t v = rng.next();
        std::memcpy(h.data() + i, &v, 8);
    }
    return h;
}

core::WaveInput input(const Hash32& node, const Hash32& manifest, std::span<const core::WaveStep> steps,
                      std::int64_t now) {
    core::WaveInput in;
    in.node_key = node;
    in.manifest_id = manifest;
    in.steps = steps;
    in.created = 1'000'000;
    in.now = now;
    return in;
}

wire::Manifest small_manifest(const crypto::SecretKey& sk) {
    wire::Manifest m;
    m.name = "fix";
    m.version = 3;
    m.created = 1'760'000'000;
    m.expires = m.created + 30 * 86400;
    m.total_size = 70'000;
    m.segment_size = wire::kMinSegmentSize;
    m.segment_hashes.resize(2);
    m.segment_hashes[1][0] = 7;
    m.file_hash = wire::segment_root(m.total_size, m.segment_size, m.segment_hashes);
    m.mandatory = true;
    wire::sign_manifest(m, sk);
    return m;
}

}  // namespace

TEST_CASE("waves: a 10% wave selects 10% of 10,000 random devices within 3 sigma") {
    Rng rng(42);
    Hash32 manifest = random_hash(rng);
    std::vector<core::WaveStep> steps{{0, 100'000}};
    int in = 0;
    const int n = 10'000;
    for (int i = 0; i < n; ++i) in += core::decide_wave(input(random_hash(rng), manifest, steps, 1'000'000)).in_wave;
    double sigma = std::sqrt(n * 0.1 * 0.9);  // 30
    INFO("in wave: " << in);
    CHECK(std::abs(in - 1000) <= 3 * sigma);
}

TEST_CASE("waves: widening only ever adds devices, by schedule and by override") {
    Rng rng(7);
    Hash32 manifest = random_hash(rng);
    std::vector<core::WaveStep> steps{{0, 50'000}, {100, 200'000}, {250, 600'000}, {400, core::kWaveAll}};
    std::vector<Hash32> nodes;
    for (int i = 0; i < 2000; ++i) nodes.push_back(random_hash(rng));
    std::vector<bool> was(nodes.size(), false);
    int last_count = 0;
    for (std::int64_t t = -10; t <= 420; t += 5) {
        int count = 0;
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            bool now_in = core::decide_wave(input(nodes[i], manifest, steps, 1'000'000 + t)).in_wave;
            INFO("node " << i << " at +" << t << "s");
            CHECK_FALSE((was[i] && !now_in));  // never leaves the wave
            was[i] = now_in;
            count += now_in;
        }
        CHECK(count >= last_count);
        last_count = count;
    }
    CHECK(last_count == 2000);  // the last step is everyone
    // Before the first step nobody; between steps the fraction of the last one reached.
    CHECK(core::wave_fraction(steps, 1'000'000, 999'999) == 0);
    CHECK(core::wave_fraction(steps, 1'000'000, 1'000'150) == 200'000);
    // An override raises the fraction, never lowers it.
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        auto in = input(nodes[i], manifest, steps, 1'000'000 + 120);  // 20% by schedule
        bool base = core::decide_wave(in).in_wave;
        in.override_fraction = 10'000;  // lower than the schedule: no effect
        CHECK(core::decide_wave(in).in_wave == base);
        in.override_fraction = 500'000;
        auto raised = core::decide_wave(in);
        CHECK((raised.in_wave || !base));
        CHECK(raised.fraction == 500'000);
        CHECK(raised.in_wave == (raised.position < 500'000));
    }
}

TEST_CASE("waves: same inputs give the same answer, and each patch draws its own wave") {
    Rng rng(99);
    Hash32 m1 = random_hash(rng), m2 = random_hash(rng);
    std::vector<core::WaveStep> steps{{0, 100'000}};
    int both = 0, in1 = 0;
    for (int i = 0; i < 10'000; ++i) {
        Hash32 node = random_hash(rng);
        auto a = core::decide_wave(input(node, m1, steps, 1'000'000));
        auto b = core::decide_wave(input(node, m1, steps, 1'000'000));
        CHECK(a.in_wave == b.in_wave);
        CHECK(a.position == b.position);
        bool c = core::decide_wave(input(node, m2, steps, 1'000'000)).in_wave;
        in1 += a.in_wave;
        both += a.in_wave && c;
    }
    // Independent draws: about 1% are in both 10% waves, not 10% (the same devices every time).
    INFO("in both waves: " << both << " of " << in1);
    CHECK(both < 200);
    CHECK(both > 40);
}

TEST_CASE("waves: a device outside the wave learns when its turn comes, and is in the wave from then on") {
    Rng rng(3);
    Hash32 manifest = random_hash(rng);
    std::vector<core::WaveStep> steps{{0, 100'000}, {3600, 500'000}, {86'400, core::kWaveAll}};
    int checked = 0;
    for (int i = 0; i < 500; ++i) {
        Hash32 node = random_hash(rng);
        auto d = core::decide_wave(input(node, manifest, steps, 1'000'010));
        if (d.in_wave) {
            CHECK_FALSE(d.turn_at.has_value());
            continue;
        }
        REQUIRE(d.turn_at.has_value());
        CHECK(*d.turn_at == 1'000'000 + (d.position < 500'000 ? 3600 : 86'400));
        CHECK_FALSE(core::decide_wave(input(node, manifest, steps, *d.turn_at - 1)).in_wave);
        CHECK(core::decide_wave(input(node, manifest, steps, *d.turn_at)).in_wave);
        ++checked;
    }
    CHECK(checked > 400);
    // A schedule that stops short of everyone: the rest wait for an operator.
    std::vector<core::WaveStep> partial{{0, 1}};
    auto d = core::decide_wave(input(random_hash(rng), manifest, partial, 2'000'000));
    CHECK_FALSE(d.in_wave);
    CHECK_FALSE(d.turn_at.has_value());
}

TEST_CASE("waves: urgent patches, super-nodes and the origin are never held back") {
    Rng rng(5);
    std::vector<core::WaveStep> nobody_yet{{3600, 1}};
    for (int i = 0; i < 100; ++i) {
        auto in = input(random_hash(rng), random_hash(rng), nobody_yet, 1'000'000);
        CHECK_FALSE(core::decide_wave(in).in_wave);
        in.urgent = true;
        CHECK(core::decide_wave(in).in_wave);
        in.urgent = false;
        in.role = Role::Super;
        CHECK(core::decide_wave(in).in_wave);
        in.role = Role::Origin;
        CHECK(core::decide_wave(in).in_wave);
    }
    // No schedule: everyone at once.
    auto in = input(random_hash(rng), random_hash(rng), {}, 1'000'000);
    CHECK(core::decide_wave(in).in_wave);
}

TEST_CASE("waves: the operator's text parses, and bad schedules are refused naming the step") {
    auto ok = core::parse_waves("10%,50%@6h,100%@2d");
    REQUIRE(ok);
    CHECK(*ok == std::vector<core::WaveStep>{{0, 100'000}, {6 * 3600, 500'000}, {2 * 86'400, core::kWaveAll}});
    CHECK(core::describe_waves(*ok) == "10% at once, 50% at +21600s, 100% at +172800s");
    auto frac = core::parse_waves("12.5%@30,100@1m");
    REQUIRE(frac);
    CHECK((*frac)[0] == core::WaveStep{30, 125'000});
    CHECK((*frac)[1] == core::WaveStep{60, core::kWaveAll});

    auto err_of = [](const char* text) {
        auto r = core::parse_waves(text);
        return r ? std::string("(accepted)") : r.error();
    };
    CHECK(err_of("") == "waves: step 1 '' is not PERCENT[@DELAY], e.g. 10% or 50%@6h");
    CHECK(err_of("10%,x") == "waves: step 2 'x' is not PERCENT[@DELAY], e.g. 10% or 50%@6h");
    CHECK(err_of("101%") == "waves: step 1 '101%' is not PERCENT[@DELAY], e.g. 10% or 50%@6h");
    CHECK(err_of("0%") == "waves: step 1 has fraction 0 millionths, outside 1..1000000");
    CHECK(err_of("10%@1h,20%@1h") == "waves: step 2 is not later than step 1");
    CHECK(err_of("50%,20%@1h") == "waves: step 2 narrows the wave (20% after 50%)");
    std::string many;
    for (int i = 1; i <= 17; ++i) many += (i > 1 ? "," : "") + std::to_string(i) + "%@" + std::to_string(i) + "m";
    CHECK(err_of(many.c_str()) == "waves: 17 steps is over the limit of 16");
}

TEST_CASE("manifest rollout fields: round trip, signed, and absent fields keep the original encoding") {
    REQUIRE(crypto::init());
    auto kp = crypto::generate_keypair();
    wire::Manifest plain = small_manifest(kp.sk);
    Bytes plain_bytes = wire::encode_manifest(plain);
    CHECK(plain_bytes[0] == 0x9d);  // fixarray of 13: the encoding every earlier build wrote

    wire::Manifest staged = plain;
    staged.waves = {{0, 100'000}, {3600, core::kWaveAll}};
    wire::sign_manifest(staged, kp.sk);
    Bytes staged_bytes = wire::encode_manifest(staged);
    CHECK(staged_bytes[0] == 0x9f);  // 15 fields
    auto back = wire::decode_manifest(staged_bytes);
    REQUIRE(back);
    CHECK(back->waves == staged.waves);
    CHECK_FALSE(back->urgent);
    CHECK(wire::check_signature(*back, kp.pk));
    // The schedule is signed: a widened copy no longer verifies.
    wire::Manifest forged = *back;
    forged.waves[0].fraction = core::kWaveAll;
    CHECK(wire::check_signature(forged, kp.pk).error() == "bad signature");

    wire::Manifest urgent = plain;
    urgent.urgent = true;
    wire::sign_manifest(urgent, kp.sk);
    auto u = wire::decode_manifest(wire::encode_manifest(urgent));
    REQUIRE(u);
    CHECK(u->urgent);
    CHECK(u->waves.empty());
}

TEST_CASE("manifest rollout fields: bad schedules and non-canonical forms are refused naming the problem") {
    REQUIRE(crypto::init());
    auto kp = crypto::generate_keypair();
    wire::Manifest m = small_manifest(kp.sk);
    auto invalid = [&](auto change) {
        wire::Manifest c = m;
        change(c);
        auto st = wire::validate_manifest(c);
        return st ? std::string("(valid)") : st.error();
    };
    CHECK(invalid([](auto& c) { c.mandatory = false, c.urgent = true; }) ==
          "manifest: urgent applies to mandatory patches only");
    CHECK(invalid([](auto& c) { c.mandatory = false, c.waves = {{0, 5}}; }) ==
          "manifest: waves applies to mandatory patches only");
    CHECK(invalid([](auto& c) { c.urgent = true, c.waves = {{0, 5}}; }) ==
          "manifest: an urgent patch skips waves; it cannot have them");
    CHECK(invalid([](auto& c) { c.waves = {{0, 5}, {31 * 86400, 10}}; }) ==
          "manifest: waves: the last step (+2678400s) is not before the manifest expires");
    CHECK(invalid([](auto& c) { c.waves = {{0, 5}, {0, 10}}; }) == "manifest: waves: step 2 is not later than step 1");

    // Decoding: a 15-field manifest whose rollout fields say nothing is not canonical
    // (the same manifest has a 13-field encoding), and the waves bin is bounded.
    wire::Manifest staged = m;
    staged.waves = {{0, 100'000}};
    wire::sign_manifest(staged, kp.sk);
    Bytes b = wire::encode_manifest(staged);
    // The waves bin is the 12 bytes before the signature (bin8 of 64 at the end): c4 0c <12 bytes> c4 40 <64>.
    std::size_t waves_at = b.size() - 66 - 12;
    REQUIRE(b[waves_at - 2] == 0xc4);
    REQUIRE(b[waves_at - 1] == 12);
    Bytes empty_waves(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(waves_at - 1));
    empty_waves.push_back(0);  // bin of 0 bytes
    empty_waves.insert(empty_waves.end(), b.end() - 66, b.end());
    staged.waves.clear();
    // With mandatory still set and nothing else, this is the non-canonical form.
    CHECK(wire::decode_manifest(empty_waves).error() == "manifest: not in canonical encoding");
    Bytes odd(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(waves_at - 1));
    odd.push_back(11);
    odd.insert(odd.end(), b.begin() + static_cast<std::ptrdiff_t>(waves_at), b.begin() + static_cast<std::ptrdiff_t>(waves_at + 11));
    odd.insert(odd.end(), b.end() - 66, b.end());
    CHECK(wire::decode_manifest(odd).error() ==
          "manifest: field 'waves' is 11 bytes, not at most 16 steps of 12");
    Bytes not_bool = b;
    REQUIRE(not_bool[waves_at - 3] == 0xc2);  // urgent = false
    not_bool[waves_at - 3] = 0x01;
    CHECK(wire::decode_manifest(not_bool).error() == "manifest: field 'urgent' is not a boolean");
}

TEST_CASE("manifest rollout fields: the manifests of earlier builds still decode") {
    int n = 0;
    for (auto& e : std::filesystem::directory_iterator(std::string(PS_SOURCE_DIR) + "/tests/fuzz/corpus/manifest")) {
        if (e.path().filename().string().rfind("valid-", 0) != 0) continue;
        std::ifstream f(e.path(), std::ios::binary);
        Bytes bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (bytes.empty() || bytes[0] != 0x9d) continue;  // the new corpus entries carry rollout fields
        auto m = wire::decode_manifest(bytes);
        INFO(e.path());
        REQUIRE(m);
        CHECK_FALSE(m->urgent);
        CHECK(m->waves.empty());
        ++n;
    }
    CHECK(n >= 5);
}
