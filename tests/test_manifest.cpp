// wire/manifest and node/trust: encoding, canonical form, limits, signatures,
// trust decisions. Each case names the check that must fire.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "crypto/crypto.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"

using namespace ps;

namespace {

constexpr std::int64_t kNow = 1'760'000'000;  // a fixed "now" (2025-10-09)

Bytes pattern(std::size_t n, std::uint8_t salt = 0) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i * 131 + (i >> 16) + salt);
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
    m.file_hash = wire::segment_root(m.total_size, m.segment_size, m.segment_hashes);
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
    // A flipped byte inside the segment-hash bin (found by searching for hash
    // 1) no longer matches the root: refused when decoding (format 2).
    Bytes h = f.bytes;
    auto at = std::search(h.begin(), h.end(), f.m.segment_hashes[1].begin(), f.m.segment_hashes[1].end());
    REQUIRE(at != h.end());
    *(at + 3) ^= 0x80;
    CHECK(wire::decode_manifest(h).error() == "manifest: file_hash is not the root of its segment hashes");
    // A flipped byte of the label still decodes, and the signature catches it.
    Bytes b = f.bytes;
    const std::string label = f.m.label;
    auto it = std::search(b.begin(), b.end(), label.begin(), label.end());
    REQUIRE(it != b.end());
    *(it + 3) ^= 0x01;
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
    REQUIRE(b[1] == 0x02);  // format 2
    b[1] = 0x03;
    auto d = wire::decode_manifest(b);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error() == "manifest: unknown format version 3 (this build reads versions 1 and 2)");
}

TEST_CASE("manifest: non-canonical encoding is rejected") {
    Fixture f;
    // The same format value 2 written as uint8 (0xcc 0x02) instead of a fixint.
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
    m.file_hash = wire::segment_root(m.total_size, m.segment_size, m.segment_hashes);
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

// ---------------------------------------------------------------- Phase B: trust state

namespace {

// A fresh folder under the system temp dir, removed with everything in it.
struct ScratchDir {
    std::filesystem::path path;
    ScratchDir() {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               ("ps-test-manifest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
                "-" + std::to_string(crypto::random_u64()));
        std::filesystem::create_directories(path);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

node::VerifiedManifest verified(const crypto::SecretKey& sk, const Bytes& data,
                                std::uint64_t version, std::string label = "") {
    auto m = make_manifest(sk, data, version);
    if (!label.empty()) {
        m.label = label;
        wire::sign_manifest(m, sk);
    }
    auto b = wire::encode_manifest(m);
    auto v = node::verify_manifest_bytes(b, node::TrustStore::from_key(sk.public_key()), kNow);
    REQUIRE(v.ok());
    return std::move(*v);
}

std::string read_text(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

TEST_CASE("rollback: a lower version than the accepted one is rejected") {
    Fixture f;
    ScratchDir d;
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE(g.ok());
    REQUIRE(g->accept(verified(f.kp.sk, f.data, 5)).ok());
    auto s = g->check(verified(f.kp.sk, f.data, 4));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "rollback: ims-client version 4 is older than accepted version 5");
    CHECK(g->check(verified(f.kp.sk, f.data, 6)).ok());
}

TEST_CASE("rollback: the same version as a different manifest is rejected") {
    Fixture f;
    ScratchDir d;
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE(g.ok());
    auto v5 = verified(f.kp.sk, f.data, 5);
    REQUIRE(g->accept(v5).ok());
    auto other5 = verified(f.kp.sk, f.data, 5, "other-label");
    REQUIRE(other5.id != v5.id);
    auto s = g->check(other5);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() ==
          "rollback: ims-client version 5 was already accepted as a different manifest " +
              wire::short_hex(v5.id));
}

TEST_CASE("rollback: re-verifying the accepted manifest is fine") {
    Fixture f;
    ScratchDir d;
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE(g.ok());
    auto v5 = verified(f.kp.sk, f.data, 5);
    REQUIRE(g->accept(v5).ok());
    CHECK(g->check(v5).ok());
    CHECK(g->accept(v5).ok());
}

TEST_CASE("rollback: accepted versions survive a restart, and a rejected manifest never replaces one") {
    Fixture f;
    ScratchDir d;
    auto v7 = verified(f.kp.sk, f.data, 7);
    {
        auto g = node::RollbackGuard::load(d.file("state"));
        REQUIRE(g.ok());
        REQUIRE(g->accept(v7).ok());
        CHECK_FALSE(g->accept(verified(f.kp.sk, f.data, 3)).ok());
    }
    auto before = read_text(d.file("state"));
    auto g2 = node::RollbackGuard::load(d.file("state"));  // "restart"
    REQUIRE(g2.ok());
    REQUIRE(g2->find("ims-client"));
    CHECK(g2->find("ims-client")->version == 7);
    CHECK(g2->find("ims-client")->id == v7.id);
    auto s = g2->accept(verified(f.kp.sk, f.data, 6));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "rollback: ims-client version 6 is older than accepted version 7");
    CHECK(read_text(d.file("state")) == before);
}

TEST_CASE("rollback: a damaged state file is an error, not a reset") {
    ScratchDir d;
    std::ofstream(d.file("state")) << "patchswarm-rollback-v1\nims-client seven abc\n";
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE_FALSE(g.ok());
    CHECK(g.error().find("line 2: expected '<name> <version> <manifest id>'") != std::string::npos);
    std::ofstream(d.file("state2")) << "patchswarm-rollback-v1\nims-client 3 ";
    auto g2 = node::RollbackGuard::load(d.file("state2"));
    REQUIRE_FALSE(g2.ok());
    CHECK(g2.error().find("truncated") != std::string::npos);
}

namespace {

node::VerifiedManifest verified_under(const crypto::SecretKey& sk, const Bytes& data, std::uint64_t version,
                                      const node::TrustStore& trust) {
    auto v = node::verify_manifest_bytes(wire::encode_manifest(make_manifest(sk, data, version)), trust, kNow);
    REQUIRE(v.ok());
    return std::move(*v);
}

}  // namespace

TEST_CASE("rollback: a fast-forward to 2^64-1 locks the name until its key is revoked, then the new key recovers it") {
    Fixture f;  // f.kp: the operator key, compromised
    ScratchDir d;
    auto next = crypto::generate_keypair();
    constexpr std::uint64_t kMax = UINT64_MAX;
    auto trust = node::TrustStore::from_key(f.kp.pk);
    {
        auto g = node::RollbackGuard::load(d.file("state"));
        REQUIRE(g.ok());
        REQUIRE(g->accept(verified_under(f.kp.sk, f.data, kMax, trust)).ok());
    }
    // The operator introduces a new key without revoking: the lock holds.
    REQUIRE(trust.apply_rotation(node::make_rotation(f.kp.sk, next.pk, false, kNow)).ok());
    {
        auto g = node::RollbackGuard::load(d.file("state"));
        REQUIRE(g.ok());
        auto s = g->check(verified_under(next.sk, f.data, 8, trust));
        REQUIRE_FALSE(s.ok());
        CHECK(s.error() == "rollback: ims-client version 8 is older than accepted version " + std::to_string(kMax));
    }
    // Revoking the compromised key lifts what it signed, across a restart.
    auto revoked = trust;
    REQUIRE(revoked.apply_rotation(node::make_rotation(f.kp.sk, next.pk, true, kNow + 1)).ok());
    auto v8 = verified_under(next.sk, f.data, 8, revoked);
    CHECK(v8.revoked_keys == std::vector<Hash32>{wire::key_id_of(f.kp.pk)});
    {
        auto g = node::RollbackGuard::load(d.file("state"));
        REQUIRE(g.ok());
        REQUIRE(g->accept(v8).ok());
        CHECK(g->find("ims-client")->version == 8);
        CHECK(g->find("ims-client")->key_id == wire::key_id_of(next.pk));
    }
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE(g.ok());
    CHECK(read_text(d.file("state")).rfind("patchswarm-rollback-v2\n", 0) == 0);
    // The new floor holds: older versions under the new key are refused ...
    auto s = g->check(verified_under(next.sk, f.data, 7, revoked));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "rollback: ims-client version 7 is older than accepted version 8");
    CHECK(g->check(verified_under(next.sk, f.data, 9, revoked)).ok());
    // ... and the revoked key's manifests are refused by trust itself.
    auto old = node::verify_manifest_bytes(wire::encode_manifest(make_manifest(f.kp.sk, f.data, kMax)), revoked, kNow);
    REQUIRE_FALSE(old.ok());
    CHECK(old.error().find("was revoked") != std::string::npos);
}

TEST_CASE("rollback: a version jump of more than 2^32 past the accepted version is refused") {
    Fixture f;
    ScratchDir d;
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE(g.ok());
    REQUIRE(g->accept(verified(f.kp.sk, f.data, 5)).ok());
    CHECK(g->check(verified(f.kp.sk, f.data, 5 + node::kMaxVersionJump)).ok());
    auto s = g->accept(verified(f.kp.sk, f.data, 6 + node::kMaxVersionJump));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "rollback: ims-client version " + std::to_string(6 + node::kMaxVersionJump) +
                           " jumps more than 4294967296 past accepted version 5");
    CHECK(g->find("ims-client")->version == 5);
    auto max = g->check(verified(f.kp.sk, f.data, UINT64_MAX));
    REQUIRE_FALSE(max.ok());
}

TEST_CASE("rollback: a v1 state file is still read and its entries still block") {
    Fixture f;
    ScratchDir d;
    auto v5 = verified(f.kp.sk, f.data, 5);
    std::ofstream(d.file("state")) << "patchswarm-rollback-v1\nims-client 5 " << to_hex(v5.id) << "\n";
    auto g = node::RollbackGuard::load(d.file("state"));
    REQUIRE(g.ok());
    CHECK(g->check(verified(f.kp.sk, f.data, 4)).error() ==
          "rollback: ims-client version 4 is older than accepted version 5");
    REQUIRE(g->accept(verified(f.kp.sk, f.data, 6)).ok());
    CHECK(read_text(d.file("state")) == "patchswarm-rollback-v2\nims-client 6 " +
                                            to_hex(verified(f.kp.sk, f.data, 6).id) + " " +
                                            to_hex(wire::key_id_of(f.kp.pk)) + "\n");
}

// ---------------------------------------------------------------- Phase B: key rotation

TEST_CASE("trust: rotation introduces a new key and revokes the old one") {
    Fixture f;
    auto next = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(f.kp.pk);
    auto old_manifest = f.bytes;
    REQUIRE(node::verify_manifest_bytes(old_manifest, trust, kNow).ok());
    auto new_manifest = wire::encode_manifest(make_manifest(next.sk, f.data, 8));
    CHECK(node::verify_manifest_bytes(new_manifest, trust, kNow)
              .error()
              .rfind("unknown signing key", 0) == 0);

    REQUIRE(trust.apply_rotation(node::make_rotation(f.kp.sk, next.pk, true, kNow)).ok());
    CHECK(node::verify_manifest_bytes(new_manifest, trust, kNow).ok());
    auto v = node::verify_manifest_bytes(old_manifest, trust, kNow);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error() == "signing key " + wire::short_hex(wire::key_id_of(f.kp.pk)) + " was revoked");
}

TEST_CASE("trust: rotation without revocation keeps both keys") {
    Fixture f;
    auto next = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(f.kp.pk);
    REQUIRE(trust.apply_rotation(node::make_rotation(f.kp.sk, next.pk, false, kNow)).ok());
    CHECK(trust.trusts(f.kp.pk));
    CHECK(trust.trusts(next.pk));
}

TEST_CASE("trust: rotation with a bad signature is refused and changes nothing") {
    Fixture f;
    auto next = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(f.kp.pk);
    auto r = node::make_rotation(f.kp.sk, next.pk, true, kNow);
    r.signature[10] ^= 1;
    auto s = trust.apply_rotation(r);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "key rotation: bad signature");
    CHECK_FALSE(trust.trusts(next.pk));
    CHECK(trust.trusts(f.kp.pk));
    // Tampering with a signed field is the same as a bad signature.
    auto r2 = node::make_rotation(f.kp.sk, next.pk, false, kNow);
    r2.revoke_signer = true;
    CHECK(trust.apply_rotation(r2).error() == "key rotation: bad signature");
}

TEST_CASE("trust: rotation signed by an unknown or revoked key is refused") {
    Fixture f;
    auto stranger = crypto::generate_keypair();
    auto next = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(f.kp.pk);
    auto s = trust.apply_rotation(node::make_rotation(stranger.sk, next.pk, false, kNow));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() ==
          "key rotation: unknown signing key " + wire::short_hex(wire::key_id_of(stranger.pk)));
    REQUIRE(trust.apply_rotation(node::make_rotation(f.kp.sk, next.pk, true, kNow)).ok());
    auto third = crypto::generate_keypair();
    auto s2 = trust.apply_rotation(node::make_rotation(f.kp.sk, third.pk, false, kNow + 1));
    REQUIRE_FALSE(s2.ok());
    CHECK(s2.error() == "key rotation: signing key " + wire::short_hex(wire::key_id_of(f.kp.pk)) +
                            " was revoked");
    CHECK_FALSE(trust.trusts(third.pk));
}

TEST_CASE("trust: a revoked key cannot be re-introduced") {
    Fixture f;
    auto next = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(f.kp.pk);
    REQUIRE(trust.apply_rotation(node::make_rotation(f.kp.sk, next.pk, true, kNow)).ok());
    auto s = trust.apply_rotation(node::make_rotation(next.sk, f.kp.pk, false, kNow + 1));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() ==
          "key rotation: new key " + wire::short_hex(wire::key_id_of(f.kp.pk)) + " was revoked");
    CHECK_FALSE(trust.trusts(f.kp.pk));
}

TEST_CASE("trust: applying the same rotation twice is a no-op") {
    Fixture f;
    auto next = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(f.kp.pk);
    auto r = node::make_rotation(f.kp.sk, next.pk, true, kNow);
    REQUIRE(trust.apply_rotation(r).ok());
    auto text = trust.to_text();
    CHECK(trust.apply_rotation(r).ok());  // signer now revoked, but this statement is known
    CHECK(trust.to_text() == text);
}

TEST_CASE("trust: trust file round trip keeps keys, rotations and revocations") {
    Fixture f;
    auto second = crypto::generate_keypair();
    auto next = crypto::generate_keypair();
    std::string text = std::string("patchswarm-trust-v1\n# operator keys\n") + "key " +
                       to_hex(f.kp.pk) + "\nkey " + to_hex(second.pk) + "\n\n" +
                       node::format_rotation(node::make_rotation(f.kp.sk, next.pk, true, kNow)) +
                       "\n";
    auto t = node::TrustStore::parse_trust_file(text, "t");
    REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error()));
    CHECK_FALSE(t->trusts(f.kp.pk));
    CHECK(t->trusts(second.pk));
    CHECK(t->trusts(next.pk));
    auto again = node::TrustStore::parse_trust_file(t->to_text(), "t2");
    REQUIRE(again.ok());
    CHECK(again->to_text() == t->to_text());
    CHECK_FALSE(again->trusts(f.kp.pk));
}

TEST_CASE("trust: a damaged trust file is refused naming the line") {
    Fixture f;
    auto next = crypto::generate_keypair();
    auto base = "patchswarm-trust-v1\nkey " + to_hex(f.kp.pk) + "\n";
    auto check_err = [](const std::string& text, const std::string& needle) {
        auto t = node::TrustStore::parse_trust_file(text, "t");
        REQUIRE_FALSE(t.ok());
        INFO(t.error());
        CHECK(t.error().find(needle) != std::string::npos);
    };
    check_err("patchswarm-trust-v2\n", "first line must be");
    check_err("patchswarm-trust-v1\n", "lists no key");
    check_err(base + "key 12\n", "line 3: 'key' must be followed by 64 lowercase hex digits");
    check_err(base + "kex " + to_hex(f.kp.pk) + "\n", "line 3: expected 'key', 'rotate'");
    check_err(base + "key " + to_hex(f.kp.pk) + "\n", "line 3: key");
    check_err(base.substr(0, base.size() - 1), "truncated");
    auto rot = node::format_rotation(node::make_rotation(f.kp.sk, next.pk, false, kNow));
    auto bad = rot;
    bad[bad.size() - 1] = bad[bad.size() - 1] == '0' ? '1' : '0';
    check_err(base + bad + "\n", "line 3: key rotation: bad signature");
    check_err(base + rot + " extra\n", "line 3: key rotation: expected");
    check_err(base + rot + "\nkey " + to_hex(next.pk) + "\n", "must come before 'rotate'");
}

TEST_CASE("trust: load tells a public key file from a trust file") {
    Fixture f;
    ScratchDir d;
    std::ofstream(d.file("op.pub")) << "patchswarm-ed25519-public-v1\n" << to_hex(f.kp.pk) << "\n";
    auto t = node::TrustStore::load(d.file("op.pub"));
    REQUIRE(t.ok());
    CHECK(t->trusts(f.kp.pk));
    std::ofstream(d.file("junk")) << "hello\n";
    auto j = node::TrustStore::load(d.file("junk"));
    REQUIRE_FALSE(j.ok());
    CHECK(j.error().find("neither a public key file") != std::string::npos);
}

// ---------------------------------------------------------------- file digest

TEST_CASE("digest: streaming digest matches one-shot hashes at any segment size") {
    REQUIRE(crypto::init());
    ScratchDir d;
    // 3.3 MiB: chunk (1 MiB) and segment boundaries fall in different places.
    Bytes data = pattern(3 * (1u << 20) + 300 * 1024 + 7, 5);
    {
        std::ofstream out(d.file("p.bin"), std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()),
                  static_cast<std::streamsize>(data.size()));
    }
    for (std::uint32_t seg : {65536u, 1u << 20, 1536u * 1024, 16u << 20}) {
        INFO("segment size " << seg);
        std::vector<Hash32> want;
        for (std::size_t off = 0; off < data.size(); off += seg)
            want.push_back(crypto::blake2b(ByteView(data).subspan(off, std::min<std::size_t>(seg, data.size() - off))));
        for (std::uint32_t format : {wire::kManifestFormat, wire::kManifestFormatWholeFile}) {
            INFO("format " << format);
            auto dg = node::digest_file(d.file("p.bin"), seg, format);
            REQUIRE(dg.ok());
            CHECK(dg->total_size == data.size());
            CHECK(dg->segment_hashes == want);
            CHECK(dg->file_hash == (format == wire::kManifestFormatWholeFile
                                        ? crypto::blake2b(data)
                                        : wire::segment_root(data.size(), seg, want)));
        }
    }
    std::ofstream(d.file("empty"));
    CHECK(node::digest_file(d.file("empty"), 65536).error().find("is empty") != std::string::npos);
}

TEST_CASE("publish: the signed manifest from the parallel digest is byte-identical to one built from sequential hashes") {
    REQUIRE(crypto::init());
    ScratchDir d;
    auto kp = crypto::generate_keypair();
    // 40 segments of 64 KiB plus a short one: every worker gets several, the last one is short.
    const std::uint32_t seg = 65536;
    Bytes data = pattern(40 * seg + 999, 9);
    {
        std::ofstream out(d.file("p.bin"), std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    wire::Manifest fields;
    fields.name = "parallel";
    fields.version = 3;
    fields.created = 1'700'000'000;
    fields.expires = fields.created + 86400;
    fields.segment_size = seg;
    fields.key_id = wire::key_id_of(kp.pk);
    // What sequential code computes: one BLAKE2b over each segment, then the
    // root of those (format 2), written out here from its definition in
    // docs/manifest.md rather than through wire::segment_root.
    wire::Manifest want = fields;
    want.total_size = data.size();
    for (std::size_t off = 0; off < data.size(); off += seg)
        want.segment_hashes.push_back(crypto::blake2b(ByteView(data).subspan(off, std::min<std::size_t>(seg, data.size() - off))));
    const char piece_tag[] = "patchswarm-piece-v2", root_tag[] = "patchswarm-root-v2";
    Hash32 piece = crypto::blake2b({ByteView(reinterpret_cast<const std::uint8_t*>(piece_tag), sizeof piece_tag),
                                    ByteView(want.segment_hashes[0].data(), want.segment_hashes.size() * 32)});
    std::uint8_t sizes[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};  // u64 total, u32 segment size, big-endian
    for (int i = 0; i < 8; ++i) sizes[i] = static_cast<std::uint8_t>(std::uint64_t(data.size()) >> (56 - 8 * i));
    want.file_hash = crypto::blake2b({ByteView(reinterpret_cast<const std::uint8_t*>(root_tag), sizeof root_tag),
                                      ByteView(sizes, sizeof sizes), ByteView(piece)});
    wire::sign_manifest(want, kp.sk);
    const Bytes want_bytes = wire::encode_manifest(want);
    for (unsigned threads : {1u, 2u, 3u, 8u}) {
        INFO(threads << " segment threads");
        auto dg = node::digest_file(d.file("p.bin"), seg, wire::kManifestFormat, threads);
        REQUIRE(dg.ok());
        wire::Manifest got = fields;
        got.total_size = dg->total_size;
        got.segment_hashes = dg->segment_hashes;
        got.file_hash = dg->file_hash;
        wire::sign_manifest(got, kp.sk);
        CHECK(wire::encode_manifest(got) == want_bytes);
    }
    auto made = node::manifest_for_file(d.file("p.bin"), fields);  // publish's own path, default threads
    REQUIRE(made.ok());
    wire::sign_manifest(*made, kp.sk);
    CHECK(wire::encode_manifest(*made) == want_bytes);
}

TEST_CASE("manifest: a format-2 file_hash that is not the root of its segment hashes is refused") {
    Fixture f;
    wire::Manifest m = f.m;
    REQUIRE(m.format == wire::kManifestFormat);
    m.file_hash[0] ^= 1;
    auto v = wire::validate_manifest(m);
    REQUIRE_FALSE(v);
    CHECK(v.error() == "manifest: file_hash is not the root of its segment hashes");
    // A segment hash changed under an unchanged root: the same refusal, also when decoding.
    m = f.m;
    m.segment_hashes.back()[5] ^= 0x40;
    CHECK_FALSE(wire::validate_manifest(m));
    // Pieces of kHashesPerPiece: the root changes with each piece's content and with the sizes.
    std::vector<Hash32> many(wire::kHashesPerPiece + 3);
    auto r = wire::segment_root(std::uint64_t(many.size()) << 16, 65536, many);
    many[wire::kHashesPerPiece + 1][0] = 1;
    CHECK(wire::segment_root(std::uint64_t(many.size()) << 16, 65536, many) != r);
    CHECK(wire::segment_root((std::uint64_t(many.size()) << 16) - 1, 65536, many) !=
          wire::segment_root(std::uint64_t(many.size()) << 16, 65536, many));
}

TEST_CASE("manifest: format 1 (whole-file hash) is still read, and a patch file is checked against it") {
    REQUIRE(crypto::init());
    ScratchDir d;
    auto kp = crypto::generate_keypair();
    Bytes data = pattern(5 * 65536 + 123, 3);
    {
        std::ofstream out(d.file("p.bin"), std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    wire::Manifest fields;
    fields.format = wire::kManifestFormatWholeFile;
    fields.name = "legacy";
    fields.version = 1;
    fields.created = kNow - 60;
    fields.expires = kNow + 86400;
    fields.segment_size = 65536;
    fields.key_id = wire::key_id_of(kp.pk);
    auto made = node::manifest_for_file(d.file("p.bin"), fields);
    REQUIRE(made.ok());
    CHECK(made->file_hash == crypto::blake2b(data));
    wire::sign_manifest(*made, kp.sk);
    auto back = wire::decode_manifest(wire::encode_manifest(*made));
    REQUIRE(back.ok());
    CHECK(back->format == wire::kManifestFormatWholeFile);
    CHECK(node::check_patch_file(*back, d.file("p.bin")).ok());
    data[100] ^= 1;  // a changed byte: its segment, checked first, names it
    {
        std::ofstream out(d.file("p.bin"), std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    auto bad = node::check_patch_file(*back, d.file("p.bin"));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "segment 0 does not match its hash");
}
