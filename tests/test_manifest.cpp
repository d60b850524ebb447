// wire/manifest and node/trust: encoding, canonical form, limits, signatures,
// trust decisions. Each case names the check that must fire.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "crypto/crypto.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"

using namespace ps;

namespace {

constexpr std::int64_t kNow = 1'760'000'000;  // a fixed "now" (2025-10-09)

Bytes pattern(std::size_t n, std::uint8_t salt = 0) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 131 + (i >> 16) + salt);
    return b;
}

// A valid, signed manifest describing `data` cut into 64 KiB segments.
wire::Manifest make_manifest(const crypto::SecretKey& sk, const Bytes& data,
                             std::uint64_t version = 7) {
    wire::Manifest m;
    m.name = "ims-client";
    m.version = version;
    m.label = "4.2.1-hotfix";
    m.created = kNow - 3600;
    m.expires = kNow + 30 * 86400;
    m.total_size = data.size();
    m.segment_size = wire::kMinSegmentSize;
    for (std::size_t off = 0; off < data.size(); off += m.segment_size)
        m.segment_hashes.push_back(crypto::blake2b(
            ByteView(data).subspan(off, std::min<std::size_t>(m.segment_size, data.size() - off))));
    m.file_hash = crypto::blake2b(data);
    m.mandatory = true;
    wire::sign_manifest(m, sk);
    return m;
}

crypto::KeyPair init_and_keypair() {
    REQUIRE(crypto::init());
    return crypto::generate_keypair();
}

struct Fixture {
    crypto::KeyPair kp = init_and_keypair();
    Bytes data = pattern(3 * 65536 + 1000);
    wire::Manifest m = make_manifest(kp.sk, data);
    Bytes bytes = wire::encode_manifest(m);
};

}  // namespace

TEST_CASE("manifest: round trip keeps every field and the signature verifies") {
    Fixture f;
    auto d = wire::decode_manifest(f.bytes);
    REQUIRE_MESSAGE(d.ok(), (d.ok() ? "" : d.error()));
    CHECK(d->format == wire::kManifestFormat);
    CHECK(d->name == "ims-client");
    CHECK(d->version == 7);
    CHECK(d->label == "4.2.1-hotfix");
    CHECK(d->created == f.m.created);
    CHECK(d->expires == f.m.expires);
    CHECK(d->total_size == f.data.size());
    CHECK(d->segment_size == wire::kMinSegmentSize);
    CHECK(d->segment_hashes == f.m.segment_hashes);
    CHECK(d->file_hash == f.m.file_hash);
    CHECK(d->mandatory);
    CHECK(d->key_id == wire::key_id_of(f.kp.pk));
    CHECK(d->signature == f.m.signature);
    CHECK(wire::encode_manifest(*d) == f.bytes);
    CHECK(wire::check_signature(*d, f.kp.pk).ok());
    CHECK(wire::manifest_id(f.bytes) == crypto::blake2b(f.bytes));
}

TEST_CASE("manifest: segment geometry, last segment shorter") {
    Fixture f;
    CHECK(f.m.segment_count() == 4);
    CHECK(f.m.segment_offset(3) == 3 * 65536);
    CHECK(f.m.segment_length(0) == 65536);
    CHECK(f.m.segment_length(3) == 1000);
    CHECK(f.m.segment_length(4) == 0);
}

TEST_CASE("manifest: flipped signature byte is rejected") {
    Fixture f;
    Bytes b = f.bytes;
    b[b.size() - 5] ^= 0x01;  // the signature is the last field
    auto d = wire::decode_manifest(b);
    REQUIRE(d.ok());  // structurally fine...
    auto s = wire::check_signature(*d, f.kp.pk);
    REQUIRE_FALSE(s.ok());  // ...but the signature does not verify
    CHECK(s.error() == "bad signature");
}

TEST_CASE("manifest: flipped byte in the body is rejected") {
    Fixture f;
    // Flip a byte inside the segment-hash bin (found by searching for hash 1).
    Bytes b = f.bytes;
    auto it = std::search(b.begin(), b.end(), f.m.segment_hashes[1].begin(),
                          f.m.segment_hashes[1].end());
    REQUIRE(it != b.end());
    *(it + 3) ^= 0x80;
    auto d = wire::decode_manifest(b);
    REQUIRE(d.ok());
    auto s = wire::check_signature(*d, f.kp.pk);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "bad signature");
    // Same through the trust layer.
    auto v = node::verify_manifest_bytes(b, node::TrustStore::from_key(f.kp.pk), kNow);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error() == "bad signature");
}

TEST_CASE("manifest: a segment with a flipped byte does not match its hash") {
    Fixture f;
    Bytes seg(f.data.begin() + 65536, f.data.begin() + 2 * 65536);
    CHECK(wire::check_segment(f.m, 1, seg).ok());
    seg[100] ^= 0x04;
    auto s = wire::check_segment(f.m, 1, seg);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "segment 1 does not match its hash");
    auto shortseg = wire::check_segment(f.m, 3, ByteView(seg).first(999));
    REQUIRE_FALSE(shortseg.ok());
    CHECK(shortseg.error() == "segment 3 is 999 bytes, expected 1000");
    CHECK_FALSE(wire::check_segment(f.m, 4, seg).ok());
}

TEST_CASE("manifest: every truncation is rejected as truncated") {
    Fixture f;
    for (std::size_t n = 0; n < f.bytes.size(); ++n) {
        auto d = wire::decode_manifest(ByteView(f.bytes).first(n));
        REQUIRE_FALSE(d.ok());
        CHECK(d.error() == "manifest: truncated");
    }
}

TEST_CASE("manifest: trailing bytes are rejected") {
    Fixture f;
    Bytes b = f.bytes;
    b.push_back(0xc0);
    auto d = wire::decode_manifest(b);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().find("trailing bytes") != std::string::npos);
}

TEST_CASE("manifest: garbage is rejected") {
    Bytes junk{0xc1, 0x00, 0x13};
    auto d = wire::decode_manifest(junk);
    REQUIRE_FALSE(d.ok());
    Bytes not_array{0xa3, 'a', 'b', 'c'};
    auto d2 = wire::decode_manifest(not_array);
    REQUIRE_FALSE(d2.ok());
    CHECK(d2.error() == "manifest: not a msgpack array");
    // An array header claiming 2^28 elements must not allocate: refused by the limit.
    Bytes huge{0xdd, 0x10, 0x00, 0x00, 0x00};
    auto d3 = wire::decode_manifest(huge);
    REQUIRE_FALSE(d3.ok());
    CHECK(d3.error().find("over its size limit") != std::string::npos);
}

TEST_CASE("manifest: unknown format version is rejected") {
    Fixture f;
    Bytes b = f.bytes;
    REQUIRE(b[0] == 0x9d);  // fixarray of 13
    REQUIRE(b[1] == 0x01);  // format 1
    b[1] = 0x02;
    auto d = wire::decode_manifest(b);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error() == "manifest: unknown format version 2 (this build reads version 1)");
}

TEST_CASE("manifest: non-canonical encoding is rejected") {
    Fixture f;
    // The same format value 1 written as uint8 (0xcc 0x01) instead of a fixint.
    Bytes b = f.bytes;
    b.insert(b.begin() + 1, 0xcc);
    auto d = wire::decode_manifest(b);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error() == "manifest: not in canonical encoding");
}

TEST_CASE("manifest: sizes that do not add up are rejected") {
    Fixture f;
    wire::Manifest m = f.m;
    m.total_size += 65536;  // needs one more segment hash than listed
    auto s = wire::validate_manifest(m);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().find("sizes do not add up") != std::string::npos);
    auto d = wire::decode_manifest(wire::encode_manifest(m));
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().find("sizes do not add up") != std::string::npos);

    m = f.m;
    m.total_size = 0;
    m.segment_hashes.clear();
    auto z = wire::decode_manifest(wire::encode_manifest(m));
    REQUIRE_FALSE(z.ok());
    CHECK(z.error() == "manifest: total_size is 0");
}

TEST_CASE("manifest: fields past their limits are rejected") {
    Fixture f;
    auto reject = [](const wire::Manifest& m, const std::string& needle) {
        auto d = wire::decode_manifest(wire::encode_manifest(m));
        REQUIRE_FALSE(d.ok());
        INFO(d.error());
        CHECK(d.error().find(needle) != std::string::npos);
    };
    wire::Manifest m = f.m;
    m.name = std::string(wire::kMaxNameLength + 1, 'a');
    reject(m, "name must be");
    m.name = "../etc";
    reject(m, "name must be");
    m = f.m;
    m.label = std::string(wire::kMaxLabelLength + 1, 'x');
    reject(m, "over its size limit");
    m.label = "bad\x1b[31m";
    reject(m, "label must be");
    m = f.m;
    m.segment_size = wire::kMinSegmentSize - 1;
    reject(m, "segment_size 65535 is outside");
    m.segment_size = wire::kMaxSegmentSize + 1;
    reject(m, "segment_size 16777217 is over");
    m = f.m;
    m.version = 0;
    reject(m, "version must be at least 1");
    m = f.m;
    m.expires = m.created;
    reject(m, "expires is not after created");
    m = f.m;
    m.created = -5;
    reject(m, "'created' is not a valid unix time");
    m = f.m;
    m.expires = m.created + wire::kMaxValiditySeconds + 1;
    reject(m, "10-year limit");
    // More segments than the limit: 65,537 segments at 64 KiB.
    m = f.m;
    m.total_size = std::uint64_t{wire::kMaxSegments + 1} * wire::kMinSegmentSize;
    m.segment_hashes.assign(wire::kMaxSegments + 1, Hash32{});
    reject(m, "over its size limit");  // the hash bin is over the 2 MiB bin limit
    auto s = wire::validate_manifest(m);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().find("segments is over the limit of 65536") != std::string::npos);
    m.total_size = wire::kMaxTotalSize + 1;
    CHECK(wire::validate_manifest(m).error().find("total_size") != std::string::npos);
}

TEST_CASE("manifest: the largest allowed manifest (65,536 segments) decodes") {
    Fixture f;
    wire::Manifest m = f.m;
    m.segment_size = wire::kDefaultSegmentSize;
    m.total_size = std::uint64_t{wire::kMaxSegments} * wire::kDefaultSegmentSize;  // 64 GiB
    m.segment_hashes.assign(wire::kMaxSegments, Hash32{});
    m.segment_hashes.back()[0] = 9;
    wire::sign_manifest(m, f.kp.sk);
    Bytes b = wire::encode_manifest(m);
    CHECK(b.size() <= wire::kMaxManifestBytes);
    auto d = wire::decode_manifest(b);
    REQUIRE_MESSAGE(d.ok(), (d.ok() ? "" : d.error()));
    CHECK(d->segment_hashes.back()[0] == 9);
    CHECK(wire::check_signature(*d, f.kp.pk).ok());
    Bytes over = b;
    over.resize(wire::kMaxManifestBytes + 1);
    CHECK(wire::decode_manifest(over).error().find("over the") != std::string::npos);
}

TEST_CASE("trust: manifest from an unknown key is rejected") {
    Fixture f;
    auto other = crypto::generate_keypair();
    auto v = node::verify_manifest_bytes(f.bytes, node::TrustStore::from_key(other.pk), kNow);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error() == "unknown signing key " + wire::short_hex(wire::key_id_of(f.kp.pk)));
}

TEST_CASE("trust: expired manifest is rejected (freeze)") {
    Fixture f;
    auto trust = node::TrustStore::from_key(f.kp.pk);
    CHECK(node::verify_manifest_bytes(f.bytes, trust, f.m.expires - 1).ok());
    auto v = node::verify_manifest_bytes(f.bytes, trust, f.m.expires);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().rfind("manifest expired at " + node::format_utc(f.m.expires), 0) == 0);
}

TEST_CASE("trust: a verified manifest carries its id and bytes") {
    Fixture f;
    auto v = node::verify_manifest_bytes(f.bytes, node::TrustStore::from_key(f.kp.pk), kNow);
    REQUIRE(v.ok());
    CHECK(v->id == wire::manifest_id(f.bytes));
    CHECK(v->bytes == f.bytes);
    CHECK(v->manifest.name == "ims-client");
}

TEST_CASE("trust: an unsigned manifest is rejected") {
    Fixture f;
    wire::Manifest m = f.m;
    m.signature = {};
    auto v = node::verify_manifest_bytes(wire::encode_manifest(m),
                                         node::TrustStore::from_key(f.kp.pk), kNow);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error() == "manifest is unsigned");
}
