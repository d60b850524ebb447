// wire/summary (the dashboard's per-domain rollout summary) and its DHT key check.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "crypto/crypto.hpp"
#include "dht/keys.hpp"
#include "wire/summary.hpp"

using namespace ps;
using wire::DomainSummary;

namespace {

constexpr std::int64_t kNow = 1'750'000'000;  // the fuzz target decodes at this instant too

crypto::SecretKey summary_key_from(std::uint8_t b) {
    crypto::Seed seed;
    seed.fill(b);
    return crypto::SecretKey::from_seed(seed);
}

DomainSummary sample_summary(const crypto::SecretKey& sk) {
    DomainSummary s;
    s.domain = "east";
    for (std::size_t i = 0; i < s.manifest_id.size(); ++i) s.manifest_id[i] = static_cast<std::uint8_t>(i * 3);
    s.node_key = sk.public_key();
    s.issued = kNow - 10;
    s.seq = 4;
    s.online = 9;
    s.holders = 7;
    s.complete = 5;
    s.bytes_imported = 16u << 20;
    s.bans = 1;
    s.rejected = {{"announcements", 2}, {"segments", 3}};
    return s;
}

std::string why(const Result<DomainSummary>& r) { return r ? std::string("ok") : r.error(); }

}  // namespace

TEST_CASE("summary: round trip keeps every field and fits one DHT packet") {
    auto sk = summary_key_from(1);
    auto s = sample_summary(sk);
    auto b = wire::encode_summary(s, sk);
    auto d = wire::decode_summary(b, kNow);
    REQUIRE_MESSAGE(d, why(d));
    CHECK(*d == s);
    // The widest summary the limits allow still fits.
    s.domain = std::string(63, 'z');
    s.issued = kNow;
    s.seq = UINT64_MAX;
    s.online = s.holders = s.complete = wire::kMaxSummaryNodes;
    s.bytes_imported = UINT64_MAX;
    s.bans = UINT32_MAX;
    s.rejected.clear();
    for (int i = 0; i < int(wire::kMaxSummaryCounters); ++i)
        s.rejected.emplace_back(std::string(wire::kMaxCounterName - 1, 'a') + char('a' + i), UINT64_MAX);
    auto wide = wire::encode_summary(s, sk);
    CHECK(wide.size() <= wire::kMaxSummaryBytes);
    CHECK(wire::decode_summary(wide, kNow));
}

TEST_CASE("summary: forged, misplaced, stale and inconsistent summaries are refused with a reason") {
    auto sk = summary_key_from(2);
    auto good = wire::encode_summary(sample_summary(sk), sk);
    for (std::size_t i = 0; i < good.size(); ++i) {
        auto b = good;
        b[i] ^= 0x01;
        auto d = wire::decode_summary(b, kNow);
        CHECK_FALSE(d);
        if (!d) CHECK(d.error().rfind("summary", 0) == 0);
    }
    CHECK(why(wire::decode_summary(good, kNow + 700)).find("stale") != std::string::npos);
    CHECK(why(wire::decode_summary(good, kNow - 400)).find("future") != std::string::npos);
    auto s = sample_summary(sk);
    s.complete = s.holders + 1;
    CHECK(why(wire::decode_summary(wire::encode_summary(s, sk), kNow)).find("exceeds holders") != std::string::npos);
    s = sample_summary(sk);
    s.rejected = {{"segments", 1}, {"announcements", 1}};
    CHECK(why(wire::decode_summary(wire::encode_summary(s, sk), kNow)).find("sorted") != std::string::npos);
    s = sample_summary(sk);
    s.rejected = {{"Bad-Name", 1}};
    CHECK(why(wire::decode_summary(wire::encode_summary(s, sk), kNow)).find("counter name") != std::string::npos);
    s = sample_summary(sk);
    s.domain = "*";
    CHECK(why(wire::decode_summary(wire::encode_summary(s, sk), kNow)).find("invalid domain") != std::string::npos);
    Bytes big(wire::kMaxSummaryBytes + 1, 0x90);
    CHECK(why(wire::decode_summary(big, kNow)).find("limit") != std::string::npos);
}

TEST_CASE("summary: storing nodes keep a summary only under its own patch's key") {
    auto sk = summary_key_from(3);
    auto s = sample_summary(sk);
    auto b = wire::encode_summary(s, sk);
    crypto::PublicKey who{};
    std::uint64_t seq = 0;
    CHECK(dht::summary_fits_key(b, dht::summary_key(s.manifest_id), kNow, 3600, &who, &seq));
    CHECK(who == sk.public_key());
    CHECK(seq == 4);
    Hash32 other = s.manifest_id;
    other[0] ^= 1;
    CHECK_FALSE(dht::summary_fits_key(b, dht::summary_key(other), kNow));
    CHECK_FALSE(dht::summary_fits_key(b, dht::holder_key("east", s.manifest_id), kNow));
    CHECK(dht::summary_key(s.manifest_id) != dht::holder_key("east", s.manifest_id));
}

TEST_CASE("summary: the checked-in fuzz corpus still holds valid seeds") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(PS_SOURCE_DIR) / "tests/fuzz/corpus/summary";
    // PS_WRITE_SUMMARY_CORPUS=1 writes the valid seeds again (after a format change).
    if (std::getenv("PS_WRITE_SUMMARY_CORPUS")) {
        fs::create_directories(dir);
        auto sk = summary_key_from(4);
        auto s = sample_summary(sk);
        auto write = [&](const char* name, const Bytes& b) {
            std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
        };
        write("valid-east", wire::encode_summary(s, sk));
        s.rejected.clear();
        s.domain = "west-2";
        s.holders = s.complete = 0;
        write("valid-no-counters", wire::encode_summary(s, sk));
        s.complete = s.holders + 1;
        write("complete-over-holders", wire::encode_summary(s, sk));
    }
    int valid = 0;
    for (auto& e : fs::directory_iterator(dir)) {
        if (e.path().filename().string().rfind("valid-", 0) != 0) continue;
        std::ifstream in(e.path(), std::ios::binary);
        Bytes b((std::istreambuf_iterator<char>(in)), {});
        auto r = wire::decode_summary(b, kNow);
        CHECK_MESSAGE(r, e.path().filename().string() << ": " << why(r));
        ++valid;
    }
    CHECK(valid >= 2);
}
