#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "crypto/crypto.hpp"
#include "wire/record.hpp"

using namespace ps;
using wire::HolderRecord;

namespace {

constexpr std::int64_t kNow = 1'750'000'000;

crypto::SecretKey key_from(std::uint8_t b) {
    crypto::Seed seed;
    seed.fill(b);
    return crypto::SecretKey::from_seed(seed);
}

HolderRecord sample(const crypto::SecretKey& sk) {
    HolderRecord r;
    r.role = Role::Peer;
    r.domain = "store-42";
    for (std::size_t i = 0; i < r.manifest_id.size(); ++i) r.manifest_id[i] = static_cast<std::uint8_t>(i * 7);
    r.host = "192.0.2.10";
    r.port = 4700;
    r.node_key = sk.public_key();
    r.segments_held = 3;
    r.segment_count = 10;
    r.issued = kNow - 5;
    r.seq = 7;
    return r;
}

// A tiny msgpack writer, so tests can build records the encoder would never
// produce (wrong sizes, extra fields, odd encodings) and still sign them.
struct Mp {
    Bytes b;
    Mp& arr(std::uint8_t n) { b.push_back(static_cast<std::uint8_t>(0x90 | n)); return *this; }
    Mp& u(std::uint64_t v) {
        if (v < 128) b.push_back(static_cast<std::uint8_t>(v));
        else if (v <= 0xff) { b.push_back(0xcc); b.push_back(static_cast<std::uint8_t>(v)); }
        else if (v <= 0xffff) { b.push_back(0xcd); be(v, 2); }
        else if (v <= 0xffffffff) { b.push_back(0xce); be(v, 4); }
        else { b.push_back(0xcf); be(v, 8); }
        return *this;
    }
    Mp& u32(std::uint32_t v) { b.push_back(0xce); be(v, 4); return *this; }  // deliberately not minimal
    Mp& str(std::string_view s) {
        if (s.size() < 32) b.push_back(static_cast<std::uint8_t>(0xa0 | s.size()));
        else { b.push_back(0xd9); b.push_back(static_cast<std::uint8_t>(s.size())); }
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Mp& bin(ByteView v) {
        if (v.size() <= 0xff) { b.push_back(0xc4); b.push_back(static_cast<std::uint8_t>(v.size())); }
        else { b.push_back(0xc5); be(v.size(), 2); }
        b.insert(b.end(), v.begin(), v.end());
        return *this;
    }
    void be(std::uint64_t v, int n) {
        for (int i = n - 1; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
};

// Body fields in wire order, for hand-built records.
struct Fields {
    std::uint64_t format = 1, role = 0;
    std::string domain = "store-42";
    Bytes manifest_id = Bytes(32, 1);
    std::string host = "192.0.2.10";
    std::uint64_t port = 4700;
    Bytes node_key;  // empty = the signer's
    std::uint64_t held = 3, count = 10;
    std::uint64_t issued = kNow - 5, seq = 7;
    int extra_fields = 0;
};

Bytes sign_body(const Bytes& body, const crypto::SecretKey& sk, std::size_t sig_len = 64) {
    static constexpr char tag[] = "patchswarm/holder-record/v1";  // + its NUL
    Bytes msg(tag, tag + sizeof tag);
    msg.insert(msg.end(), body.begin(), body.end());
    auto sig = crypto::sign(sk, msg);
    Bytes s(sig.begin(), sig.end());
    s.resize(sig_len, 0);
    Mp outer;
    outer.arr(2).bin(body).bin(s);
    return outer.b;
}

Bytes hand_record(const Fields& f, const crypto::SecretKey& sk) {
    Mp m;
    m.arr(static_cast<std::uint8_t>(11 + f.extra_fields)).u(f.format).u(f.role).str(f.domain).bin(f.manifest_id);
    m.str(f.host).u(f.port);
    auto pk = sk.public_key();
    m.bin(f.node_key.empty() ? ByteView(pk) : ByteView(f.node_key));
    m.u(f.held).u(f.count).u(f.issued).u(f.seq);
    for (int i = 0; i < f.extra_fields; ++i) m.u(0);
    return sign_body(m.b, sk);
}

std::string reason(const Result<HolderRecord>& r) { return r ? std::string("(accepted)") : r.error(); }

}  // namespace

TEST_CASE("record: round trip keeps every field and stays under one DHT packet") {
    REQUIRE(crypto::init());
    auto sk = key_from(1);
    auto r = sample(sk);
    auto enc = wire::encode_record(r, sk);
    auto dec = wire::decode_record(enc, kNow);
    REQUIRE_MESSAGE(dec, reason(dec));
    CHECK(*dec == r);
    CHECK(enc.size() < 600);

    // The widest record the limits allow still fits the size cap.
    HolderRecord big = r;
    big.role = Role::Origin;
    big.domain = std::string(63, 'z');
    big.host = "fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
    big.port = 65535;
    big.segment_count = wire::kMaxRecordSegments;
    big.segments_held = wire::kMaxRecordSegments;
    big.issued = kNow + 300;
    big.seq = UINT64_MAX;
    auto big_enc = wire::encode_record(big, sk);
    CHECK(big_enc.size() <= wire::kMaxRecordBytes);
    auto big_dec = wire::decode_record(big_enc, kNow);
    REQUIRE_MESSAGE(big_dec, reason(big_dec));
    CHECK(*big_dec == big);

    // IPv6 hosts round-trip too.
    r.host = "2001:db8::7";
    auto v6 = wire::decode_record(wire::encode_record(r, sk), kNow);
    REQUIRE_MESSAGE(v6, reason(v6));
    CHECK(v6->host == "2001:db8::7");
}

TEST_CASE("record: the encoded node_key is always the signer's") {
    REQUIRE(crypto::init());
    auto sk = key_from(2);
    auto r = sample(sk);
    r.node_key = key_from(3).public_key();  // a lie the encoder must not repeat
    auto dec = wire::decode_record(wire::encode_record(r, sk), kNow);
    REQUIRE_MESSAGE(dec, reason(dec));
    CHECK(dec->node_key == sk.public_key());

    // Hand-built: signed by key 2 but claiming key 3.
    Fields f;
    auto other = key_from(3).public_key();
    f.node_key.assign(other.begin(), other.end());
    auto forged = wire::decode_record(hand_record(f, sk), kNow);
    REQUIRE_FALSE(forged);
    CHECK(forged.error() == "record: signature does not verify");
    // The same fields with the signer's own key pass: the key was the only fault.
    CHECK(wire::decode_record(hand_record(Fields{}, sk), kNow));
}

TEST_CASE("record: a flipped byte anywhere is rejected with a reason") {
    REQUIRE(crypto::init());
    auto sk = key_from(4);
    const auto enc = wire::encode_record(sample(sk), sk);
    REQUIRE(wire::decode_record(enc, kNow));
    int accepted = 0;
    for (std::size_t i = 0; i < enc.size(); ++i) {
        for (std::uint8_t mask : {0x01, 0x20, 0x80, 0xff}) {
            Bytes t = enc;
            t[i] ^= mask;
            auto r = wire::decode_record(t, kNow);
            if (r) {
                ++accepted;
                MESSAGE("accepted with byte " << i << " ^ " << int(mask));
            } else {
                CHECK(r.error().rfind("record", 0) == 0);
            }
        }
    }
    CHECK(accepted == 0);
    // Signature bytes are the last 64: only the signature check can catch them.
    Bytes t = enc;
    t[enc.size() - 1] ^= 1;
    CHECK(wire::decode_record(t, kNow).error() == "record: signature does not verify");
    t = enc;
    t[enc.size() - 64] ^= 0x80;
    CHECK(wire::decode_record(t, kNow).error() == "record: signature does not verify");
    // A signed field that still parses (seq, just before the signature's bin header).
    t = enc;
    t[enc.size() - 67] ^= 1;
    CHECK(wire::decode_record(t, kNow).error() == "record: signature does not verify");
    // Truncation and trailing bytes.
    CHECK_FALSE(wire::decode_record(ByteView(enc).first(enc.size() - 1), kNow));
    Bytes longer = enc;
    longer.push_back(0);
    CHECK_FALSE(wire::decode_record(longer, kNow));
    CHECK_FALSE(wire::decode_record(Bytes{}, kNow));
}

TEST_CASE("record: wrong field sizes, oversized host and unknown role are rejected") {
    REQUIRE(crypto::init());
    auto sk = key_from(5);
    auto check_refused = [&](const Fields& f, std::string_view want) {
        auto r = wire::decode_record(hand_record(f, sk), kNow);
        REQUIRE_FALSE_MESSAGE(r, "accepted; wanted: " << want);
        CHECK_MESSAGE(r.error().find(want) != std::string::npos, r.error() << " | wanted: " << want);
    };
    REQUIRE(wire::decode_record(hand_record(Fields{}, sk), kNow));  // the baseline passes

    Fields f;
    f.manifest_id.resize(31);
    check_refused(f, "manifest_id");
    f = {};
    f.manifest_id.resize(33);
    check_refused(f, "manifest_id");  // bins may be up to a certificate's size; this one is not 32 bytes
    f = {};
    f.node_key = Bytes(31, 9);
    check_refused(f, "node_key");
    f = {};
    f.role = 3;
    check_refused(f, "unknown role 3");
    f = {};
    f.format = 3;
    check_refused(f, "unknown format 3");
    f = {};
    f.format = 2;  // format 2 carries a certificate as a 12th field
    check_refused(f, "body has 11 fields, expected 12");
    f = {};
    f.extra_fields = 1;
    check_refused(f, "12 fields");
    f = {};
    f.host = "1111:2222:3333:4444:5555:6666:7777:8888:9999";  // 44 chars, not an address
    check_refused(f, "host");
    f = {};
    f.host = std::string(46, '1');
    check_refused(f, "host");
    f = {};
    f.host = std::string(64, '1');
    check_refused(f, "limit");  // longer than any string field may be
    for (const char* bad : {"localhost", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1",
                            "fe80::1", "::ffff:192.0.2.1", "0:0:0:0:0:0:0:1", "2001:DB8::1", "192.0.2.010"}) {
        f = {};
        f.host = bad;
        check_refused(f, "host");
    }
    f = {};
    f.domain = "Bad_Domain";
    check_refused(f, "domain");
    f = {};
    f.domain = "*";
    check_refused(f, "domain");
    f = {};
    f.port = 80;
    check_refused(f, "port 80");
    f = {};
    f.port = 0;
    check_refused(f, "port 0");
    f = {};
    f.port = 70000;
    check_refused(f, "port");
    f = {};
    f.held = 11;
    check_refused(f, "segments_held 11 exceeds");
    f = {};
    f.count = f.held = wire::kMaxRecordSegments + 1;
    check_refused(f, "segment_count");

    // Non-canonical but otherwise valid encodings are refused: one record, one encoding.
    Mp m;
    m.arr(11).u(1).u(0).str("store-42").bin(Bytes(32, 1)).str("192.0.2.10").u32(4700);
    auto pk = sk.public_key();
    m.bin(pk).u(3).u(10).u(kNow - 5).u(7);
    auto r = wire::decode_record(sign_body(m.b, sk), kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error() == "record: not in canonical encoding");
    // A 63-byte signature.
    Fields ok;
    Mp body;
    body.arr(11).u(1).u(0).str(ok.domain).bin(ok.manifest_id).str(ok.host).u(ok.port).bin(pk).u(3).u(10)
        .u(ok.issued).u(7);
    r = wire::decode_record(sign_body(body.b, sk, 63), kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().find("signature is not a 64-byte bin") != std::string::npos);
    // Oversized input is refused before parsing.
    Bytes huge(wire::kMaxRecordBytes + 1, 0x90);
    r = wire::decode_record(huge, kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().find("limit") != std::string::npos);
    // A hostile array32 header claiming 2^28 elements fails on the limit at once.
    Bytes hostile{0xdd, 0x10, 0x00, 0x00, 0x00};
    CHECK_FALSE(wire::decode_record(hostile, kNow));
}

TEST_CASE("record: stale and future issued times are rejected") {
    REQUIRE(crypto::init());
    auto sk = key_from(6);
    auto at = [&](std::int64_t issued, std::int64_t max_age = 3600) {
        auto r = sample(sk);
        r.issued = issued;
        return wire::decode_record(wire::encode_record(r, sk), kNow, max_age);
    };
    CHECK(at(kNow - 3600));
    CHECK(at(kNow + 300));
    auto stale = at(kNow - 3601);
    REQUIRE_FALSE(stale);
    CHECK(stale.error().rfind("record: stale", 0) == 0);
    auto future = at(kNow + 301);
    REQUIRE_FALSE(future);
    CHECK(future.error().find("in the future") != std::string::npos);
    CHECK(at(kNow - 60, 60));
    CHECK_FALSE(at(kNow - 61, 60));
    // Extreme values do not overflow the age computation.
    CHECK_FALSE(at(INT64_MIN));
    CHECK_FALSE(at(INT64_MAX));
}

TEST_CASE("record: the checked-in fuzz corpus still holds valid seeds") {
    // tests/fuzz/fuzz_record.cpp decodes at this same instant; if the format or the
    // signing changes, regenerate the valid-* seeds (see docs/dht.md).
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(PS_SOURCE_DIR) / "tests/fuzz/corpus/record";
    int valid = 0;
    for (auto& e : fs::directory_iterator(dir)) {
        if (e.path().filename().string().rfind("valid-", 0) != 0) continue;
        std::ifstream in(e.path(), std::ios::binary);
        Bytes b((std::istreambuf_iterator<char>(in)), {});
        auto r = wire::decode_record(b, kNow);
        CHECK_MESSAGE(r, e.path().filename().string() << ": " << reason(r));
        ++valid;
    }
    CHECK(valid >= 3);
}
