// Enrollment: node certificates (wire/cert.hpp), their check under a trust store
// (node/enroll.hpp), and a live node that refuses peers without a valid one at
// the handshake (real sockets on loopback). Each refusal has its own counter.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/rollout.hpp"
#include "hostile.hpp"
#include "node/enroll.hpp"
#include "node/node.hpp"
#include "support.hpp"
#include "wire/cert.hpp"
#include "wire/record.hpp"
#include "wire/statement.hpp"

using namespace ps;
using namespace ps::test;

namespace {

constexpr std::int64_t kNow = 1'750'000'000;

wire::NodeCert cert_for(const crypto::PublicKey& node, Role role, const std::string& domain,
                        std::int64_t issued = kNow - 10, std::int64_t expires = kNow + 86400) {
    wire::NodeCert c;
    c.node_key = node;
    c.role = role;
    c.domain = domain;
    c.issued = issued;
    c.expires = expires;
    return c;
}

template <class T>
std::string reason(const Result<T>& r) {
    return r ? std::string() : r.error();
}

node::CertRefusal refusal(ByteView cert, const crypto::PublicKey& key, Role role, const std::string& domain,
                          const node::TrustStore& trust, std::int64_t now = kNow) {
    auto f = node::check_cert(cert, key, role, domain, trust, now);
    REQUIRE(f.has_value());
    return f->why;
}

}  // namespace

TEST_CASE("cert: round trip, canonical, and every flipped byte is refused") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair();
    auto node = crypto::generate_keypair();
    const Bytes b = wire::encode_cert(cert_for(node.pk, Role::Super, "shop-1"), op.sk);
    CHECK(b.size() <= wire::kMaxCertBytes);
    auto c = wire::decode_cert(b);
    REQUIRE_MESSAGE(c, reason(c));
    CHECK(c->node_key == node.pk);
    CHECK(c->role == Role::Super);
    CHECK(c->domain == "shop-1");
    CHECK(c->operator_key == op.pk);
    for (std::size_t i = 0; i < b.size(); ++i) {
        Bytes f = b;
        f[i] ^= 0x01;
        auto r = wire::decode_cert(f);
        CHECK_MESSAGE(!r, "byte " << i);
        if (!r) CHECK(r.error().rfind("certificate", 0) == 0);
    }
    Bytes longer = b;
    longer.push_back(0xc0);
    CHECK(reason(wire::decode_cert(longer)).find("trailing") != std::string::npos);
    CHECK(reason(wire::decode_cert(Bytes(wire::kMaxCertBytes + 1, 0x90))).find("limit") != std::string::npos);
    // A maximal certificate (63-byte domain, widest integers) stays within the cap.
    auto big = cert_for(node.pk, Role::Origin, std::string(63, 'a'), INT64_MIN / 2, INT64_MIN / 2 + 3600);
    CHECK(wire::encode_cert(big, op.sk).size() <= wire::kMaxCertBytes);
    auto backwards = cert_for(node.pk, Role::Peer, "d1", kNow, kNow - 1);
    CHECK(reason(wire::decode_cert(wire::encode_cert(backwards, op.sk))).find("expires before") != std::string::npos);
}

TEST_CASE("cert: a holder record carries its node's certificate, and one for another node, role or domain is refused") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair();
    auto node = crypto::generate_keypair();
    wire::HolderRecord r;
    r.role = Role::Super;
    r.domain = std::string(63, 'x');
    r.host = "fd00:1234:5678:9abc:def0:1234:5678:9abc";
    r.port = 65535;
    r.node_key = node.pk;
    r.segments_held = r.segment_count = wire::kMaxRecordSegments;
    r.issued = kNow;
    r.seq = UINT64_MAX;
    r.cert = wire::encode_cert(cert_for(node.pk, Role::Super, r.domain, INT64_MIN / 2, INT64_MIN / 2 + 3600), op.sk);
    const Bytes enc = wire::encode_record(r, node.sk);
    MESSAGE("maximal record with a maximal certificate: " << enc.size() << " bytes");
    CHECK(enc.size() <= wire::kMaxRecordBytes);
    auto d = wire::decode_record(enc, kNow);
    REQUIRE_MESSAGE(d, reason(d));
    CHECK(d->format == wire::kRecordFormatCert);
    CHECK(d->cert == r.cert);

    auto other = crypto::generate_keypair();
    auto refused = [&](wire::NodeCert c) {
        auto rr = r;
        rr.cert = wire::encode_cert(c, op.sk);
        return reason(wire::decode_record(wire::encode_record(rr, node.sk), kNow));
    };
    CHECK(refused(cert_for(other.pk, Role::Super, r.domain)).find("another node") != std::string::npos);
    CHECK(refused(cert_for(node.pk, Role::Peer, r.domain)).find("another node") != std::string::npos);
    CHECK(refused(cert_for(node.pk, Role::Super, "elsewhere")).find("another node") != std::string::npos);
}

TEST_CASE("enroll: check_cert refuses a missing, forged, untrusted, revoked-key, expired, wrong-role or wrong-domain certificate") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair(), stranger = crypto::generate_keypair(), next = crypto::generate_keypair();
    auto node = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(op.pk);
    const Bytes good = wire::encode_cert(cert_for(node.pk, Role::Super, "d1"), op.sk);
    CHECK_FALSE(node::check_cert(good, node.pk, Role::Super, "d1", trust, kNow).has_value());
    using R = node::CertRefusal;
    CHECK(refusal({}, node.pk, Role::Super, "d1", trust) == R::Missing);
    Bytes flipped = good;
    flipped[flipped.size() - 1] ^= 1;
    CHECK(refusal(flipped, node.pk, Role::Super, "d1", trust) == R::Invalid);
    CHECK(refusal(good, stranger.pk, Role::Super, "d1", trust) == R::Invalid);  // someone else's certificate
    CHECK(refusal(wire::encode_cert(cert_for(node.pk, Role::Super, "d1"), stranger.sk), node.pk, Role::Super, "d1",
                  trust) == R::Untrusted);
    CHECK(refusal(good, node.pk, Role::Super, "d1", trust, kNow + 86400) == R::Expired);
    CHECK(refusal(good, node.pk, Role::Origin, "d1", trust) == R::WrongRole);
    CHECK(refusal(good, node.pk, Role::Super, "d2", trust) == R::WrongDomain);
    // Rotation state counts: once the signing key is revoked, its certificates are refused.
    REQUIRE(trust.apply_rotation(node::make_rotation(op.sk, next.pk, true, kNow)));
    CHECK(refusal(good, node.pk, Role::Super, "d1", trust) == R::Untrusted);
    const Bytes renewed = wire::encode_cert(cert_for(node.pk, Role::Super, "d1"), next.sk);
    CHECK_FALSE(node::check_cert(renewed, node.pk, Role::Super, "d1", trust, kNow).has_value());
}

TEST_CASE("enroll: the trust file line require-enrollment round-trips, and the certificate file is strict") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair();
    const std::string text = std::string(node::kTrustFileHeader) + "\nkey " + to_hex(op.pk) + "\nrequire-enrollment\n";
    auto t = node::TrustStore::parse_trust_file(text, "t");
    REQUIRE_MESSAGE(t, reason(t));
    CHECK(t->require_enrollment());
    CHECK(t->to_text() == text);
    CHECK_FALSE(node::TrustStore::from_key(op.pk).require_enrollment());

    const Bytes c = wire::encode_cert(cert_for(op.pk, Role::Peer, "d1"), op.sk);
    auto ok = node::parse_cert_file(node::format_cert_file(c), "f");
    REQUIRE_MESSAGE(ok, reason(ok));
    CHECK(*ok == c);
    CHECK(reason(node::parse_cert_file("patchswarm-node-cert-v1\nzz\n", "f")).find("not hex") != std::string::npos);
    CHECK(reason(node::parse_cert_file("other\n", "f")).find("first line") != std::string::npos);
    CHECK(reason(node::parse_cert_file("patchswarm-node-cert-v1\n00", "f")).find("truncated") != std::string::npos);
}

namespace {

// A live node that requires enrollment, and clients dialing it over loopback
// with certificates of every kind.
struct Gate {
    TempDir dir{"ps-enroll"};
    transfer::Loop loop;
    crypto::KeyPair op = crypto::generate_keypair();
    std::unique_ptr<node::Node> node;
    Hostile clients{loop};

    explicit Gate(bool require = true) {
        REQUIRE(crypto::init());
        node::NodeOptions o;
        o.data_dir = dir / "gate";
        o.dht.max_peer_req_per_sec = -1;
        o.gossip_peers = 0;
        auto trust = node::TrustStore::from_key(op.pk);
        trust.set_require_enrollment(require);
        o.trust = trust;
        auto kp = crypto::generate_keypair();
        transfer::Identity id{kp.sk, kp.pk, Role::Super, "d1"};
        id.cert = wire::encode_cert(cert_for(kp.pk, Role::Super, "d1", unix_now() - 10, unix_now() + 3600), op.sk);
        node = std::make_unique<node::Node>(loop, o, id);
        REQUIRE(node->start());
    }
    ~Gate() {
        bool done = false;
        node->shutdown([&] { done = true; });
        run_until(loop, [&] { return done; }, 10'000);
    }
    static std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }
    // Dials with a fresh key presenting what `make_cert` returns for it; true
    // when the connection is still up 1 s after its handshake.
    bool admitted(Role role, const std::string& domain, const std::function<Bytes(const crypto::KeyPair&)>& make_cert) {
        auto kp = crypto::generate_keypair();
        clients.ids.push_back(transfer::Identity{kp.sk, kp.pk, role, domain, make_cert(kp)});
        clients.conns.push_back(
            transfer::Connection::dial(loop, "127.0.0.1", node->listen_port(), clients.ids.back(), clients));
        auto id = clients.conns.back()->id();
        run_until(loop, [&] { return clients.closed.count(id) > 0 || clients.ready_at.count(id) > 0; }, 5'000);
        run_until(loop, [&] { return clients.closed.count(id) > 0; }, 1'000);
        return clients.ready_at.count(id) && !clients.closed.count(id);
    }
    Bytes signed_by(const crypto::KeyPair& signer, const crypto::KeyPair& kp, Role role, const std::string& domain,
                    std::int64_t expires_in = 3600) {
        return wire::encode_cert(cert_for(kp.pk, role, domain, unix_now() - 7200, unix_now() + expires_in), signer.sk);
    }
};

std::uint64_t refused(const node::Node& n, node::CertRefusal r) {
    return n.status().peers_refused.refused[static_cast<std::size_t>(r)];
}

}  // namespace

TEST_CASE("enroll: a node that requires enrollment refuses peers at the handshake, counting each reason") {
    Gate g;
    using R = node::CertRefusal;
    auto stranger = crypto::generate_keypair();
    // The control: a valid certificate is let in.
    CHECK(g.admitted(Role::Peer, "d1", [&](auto& kp) { return g.signed_by(g.op, kp, Role::Peer, "d1"); }));
    CHECK(g.admitted(Role::Super, "d2", [&](auto& kp) { return g.signed_by(g.op, kp, Role::Super, "d2"); }));

    CHECK_FALSE(g.admitted(Role::Peer, "d1", [](auto&) { return Bytes{}; }));
    CHECK(refused(*g.node, R::Missing) == 1);
    CHECK_FALSE(g.admitted(Role::Peer, "d1", [&](auto&) { return g.signed_by(g.op, stranger, Role::Peer, "d1"); }));
    CHECK(refused(*g.node, R::Invalid) == 1);
    CHECK_FALSE(g.admitted(Role::Peer, "d1", [&](auto& kp) { return g.signed_by(stranger, kp, Role::Peer, "d1"); }));
    CHECK(refused(*g.node, R::Untrusted) == 1);
    CHECK_FALSE(g.admitted(Role::Peer, "d1", [&](auto& kp) { return g.signed_by(g.op, kp, Role::Peer, "d1", -60); }));
    CHECK(refused(*g.node, R::Expired) == 1);
    // A device enrolled as a peer claims to be a super-node, or the origin.
    CHECK_FALSE(g.admitted(Role::Super, "d1", [&](auto& kp) { return g.signed_by(g.op, kp, Role::Peer, "d1"); }));
    CHECK_FALSE(g.admitted(Role::Origin, "d1", [&](auto& kp) { return g.signed_by(g.op, kp, Role::Peer, "d1"); }));
    CHECK(refused(*g.node, R::WrongRole) == 2);
    // A device of d2 claims d1.
    CHECK_FALSE(g.admitted(Role::Peer, "d1", [&](auto& kp) { return g.signed_by(g.op, kp, Role::Peer, "d2"); }));
    CHECK(refused(*g.node, R::WrongDomain) == 1);
    CHECK(g.node->status().peers_refused.total() == 7);
    CHECK(g.node->connected_peers() == 2);  // the two valid ones, and nobody else
}

TEST_CASE("enroll: without require-enrollment in the trust store, peers without a certificate are let in") {
    Gate g(false);
    CHECK(g.admitted(Role::Origin, "d9", [](auto&) { return Bytes{}; }));
    CHECK(g.node->status().peers_refused.total() == 0);
}

// ---------------------------------------------------------------- statements

TEST_CASE("statement: round trip, canonical, every flipped byte refused, unknown kinds and big payloads refused") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair();
    wire::Statement st;
    st.kind = wire::StatementKind::RevokeCert;
    st.seq = 7;
    st.issued = kNow;
    st.payload = Bytes(32, 0xab);
    const Bytes b = wire::encode_statement(st, op.sk);
    auto d = wire::decode_statement(b);
    REQUIRE_MESSAGE(d, reason(d));
    CHECK(d->kind == st.kind);
    CHECK(d->payload == st.payload);
    CHECK(d->signer == op.pk);
    for (std::size_t i = 0; i < b.size(); ++i) {
        Bytes f = b;
        f[i] ^= 0x01;
        CHECK_MESSAGE(!wire::decode_statement(f), "byte " << i);
    }
    st.payload = Bytes(wire::kMaxStatementPayload, 1);
    const Bytes biggest = wire::encode_statement(st, op.sk);
    CHECK(biggest.size() <= wire::kMaxStatementBytes);
    CHECK(wire::decode_statement(biggest));
    st.payload.push_back(1);  // one byte over: refused by the unpack limit or the field check, never accepted
    auto over = wire::decode_statement(wire::encode_statement(st, op.sk));
    CHECK_FALSE(over);
    CHECK(reason(over).rfind("statement", 0) == 0);
    st.payload.resize(4);
    st.kind = static_cast<wire::StatementKind>(99);
    CHECK(reason(wire::decode_statement(wire::encode_statement(st, op.sk))).find("unknown kind 99") != std::string::npos);
}

TEST_CASE("statement: a trust store applies rotations and revocations once, from trusted signers only, and keeps them in its text") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair(), next = crypto::generate_keypair(), stranger = crypto::generate_keypair();
    auto node = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(op.pk);
    trust.set_require_enrollment(true);
    auto statement = [&](wire::StatementKind k, Bytes payload, const crypto::KeyPair& by) {
        wire::Statement st;
        st.kind = k;
        st.issued = kNow;
        st.payload = std::move(payload);
        return wire::encode_statement(st, by.sk);
    };
    const Bytes revoke = statement(wire::StatementKind::RevokeCert, Bytes(node.pk.begin(), node.pk.end()), op);
    const Bytes cert = wire::encode_cert(cert_for(node.pk, Role::Peer, "d1"), op.sk);
    CHECK_FALSE(node::check_cert(cert, node.pk, Role::Peer, "d1", trust, kNow).has_value());
    // A stranger cannot revoke anyone.
    auto forged = trust.apply_statement(statement(wire::StatementKind::RevokeCert, Bytes(node.pk.begin(), node.pk.end()), stranger));
    CHECK(reason(forged).find("not trusted") != std::string::npos);
    auto applied = trust.apply_statement(revoke);
    REQUIRE_MESSAGE(applied, reason(applied));
    CHECK(*applied);
    CHECK_FALSE(*trust.apply_statement(revoke));  // once
    CHECK(refusal(cert, node.pk, Role::Peer, "d1", trust) == node::CertRefusal::Revoked);

    auto rot = node::make_rotation(op.sk, next.pk, true, kNow);
    const Bytes rotation = statement(wire::StatementKind::KeyRotation, node::rotation_payload(rot), op);
    // The rotation's own signer must be the statement's.
    CHECK_FALSE(trust.apply_statement(statement(wire::StatementKind::KeyRotation, node::rotation_payload(rot), next)));
    auto r = trust.apply_statement(rotation);
    REQUIRE_MESSAGE(r, reason(r));
    CHECK(*r);
    CHECK(trust.trusts(next.pk));
    CHECK_FALSE(trust.trusts(op.pk));
    // The text keeps both, in order, and reads back to the same store.
    auto back = node::TrustStore::parse_trust_file(trust.to_text(), "t");
    REQUIRE_MESSAGE(back, reason(back));
    CHECK(back->node_revoked(node.pk));
    CHECK(back->trusts(next.pk));
    CHECK_FALSE(back->trusts(op.pk));
    CHECK(back->to_text() == trust.to_text());
}

TEST_CASE("statement: a widening keeps the highest fraction per manifest, never narrows, survives the trust file, "
          "and bad payloads, untrusted signers and too many releases are refused") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair(), stranger = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(op.pk);
    Hash32 m1{}, m2{};
    m1[0] = 1;
    m2[0] = 2;
    std::uint64_t seq = 0;
    auto widen = [&](const Hash32& id, std::uint32_t fraction, const crypto::KeyPair& by) {
        wire::Statement st;
        st.kind = wire::StatementKind::Widen;
        st.seq = ++seq;
        st.issued = kNow + static_cast<std::int64_t>(seq);  // each later than the one before
        st.payload = wire::widen_payload(id, fraction);
        return wire::encode_statement(st, by.sk);
    };
    auto p = wire::parse_widen_payload(wire::widen_payload(m1, 500'000));
    REQUIRE_MESSAGE(p, reason(p));
    CHECK(p->manifest_id == m1);
    CHECK(p->fraction == 500'000u);
    CHECK(reason(wire::parse_widen_payload(Bytes(35, 1))) == "widen: payload is 35 bytes, expected 36 (manifest id, fraction)");
    CHECK(reason(wire::parse_widen_payload(wire::widen_payload(m1, 0))) == "widen: fraction 0 is not in 1..1000000 millionths");
    CHECK(reason(wire::parse_widen_payload(wire::widen_payload(m1, 1'000'001))).find("widen: fraction 1000001 is not in") == 0);
    auto decoded = wire::decode_statement(widen(m1, 1, op));
    REQUIRE_MESSAGE(decoded, reason(decoded));
    CHECK(decoded->kind == wire::StatementKind::Widen);
    CHECK(std::string(wire::to_string(decoded->kind)) == "widen");

    // Refused, store unchanged: a bad fraction, a signer it does not trust.
    CHECK(reason(trust.apply_statement(widen(m1, 0, op))).find("widen: fraction 0") == 0);
    CHECK(reason(trust.apply_statement(widen(m1, core::kWaveAll, stranger))).find("not trusted") != std::string::npos);
    CHECK(trust.widened(m1) == 0u);
    const std::string empty = trust.to_text();

    const Bytes half = widen(m1, 500'000, op);
    auto a = trust.apply_statement(half);
    REQUIRE_MESSAGE(a, reason(a));
    CHECK(*a);
    CHECK(trust.widened(m1) == 500'000u);
    // Lower (though signed later), the same fraction again, a replay: nothing changes.
    CHECK_FALSE(*trust.apply_statement(widen(m1, 300'000, op)));
    CHECK_FALSE(*trust.apply_statement(widen(m1, 500'000, op)));
    CHECK_FALSE(*trust.apply_statement(half));
    CHECK(trust.widened(m1) == 500'000u);
    CHECK(*trust.apply_statement(widen(m2, 100'000, op)));  // each manifest its own
    const Bytes all = widen(m1, core::kWaveAll, op);
    CHECK(*trust.apply_statement(all));
    CHECK(trust.widened(m1) == core::kWaveAll);
    CHECK(trust.widenings() == std::map<Hash32, std::uint32_t>{{m1, core::kWaveAll}, {m2, 100'000}});

    // The text keeps the highest per manifest only, and reads back to the same store,
    // where the older one still changes nothing.
    const std::string text = trust.to_text();
    CHECK(text.find(to_hex(all)) != std::string::npos);
    CHECK(text.find(to_hex(half)) == std::string::npos);
    CHECK(text.size() - empty.size() == 2 * ("statement " + to_hex(all) + "\n").size());
    auto back = node::TrustStore::parse_trust_file(text, "t");
    REQUIRE_MESSAGE(back, reason(back));
    CHECK(back->widened(m1) == core::kWaveAll);
    CHECK(back->widened(m2) == 100'000u);
    CHECK(back->to_text() == text);
    CHECK_FALSE(*back->apply_statement(half));
    CHECK(back->widened(m1) == core::kWaveAll);

    // Bounded: at most kMaxStatements releases widened; raising one kept still works.
    for (std::size_t i = 2; i < node::kMaxStatements; ++i) {
        Hash32 id{};
        id[0] = 3;
        id[1] = static_cast<std::uint8_t>(i >> 8);
        id[2] = static_cast<std::uint8_t>(i);
        REQUIRE(*trust.apply_statement(widen(id, 10, op)));
    }
    Hash32 one_more{};
    one_more[0] = 4;
    CHECK(reason(trust.apply_statement(widen(one_more, 10, op))) == "widen: more than 1024 releases widened");
    CHECK(*trust.apply_statement(widen(m2, 200'000, op)));
}

TEST_CASE("statement: a halted release and a manifest created in the future are refused by verification") {
    REQUIRE(crypto::init());
    TempDir dir("ps-halt");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "p.bin";
    write_random_file(patch, 100'000, 3);
    auto vm = publish(patch, op, "tool", 4);
    auto trust = node::TrustStore::from_key(op.pk);
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    REQUIRE(node::verify_manifest_bytes(vm.bytes, trust, now));
    wire::Statement st;
    st.kind = wire::StatementKind::Halt;
    st.issued = now;
    st.payload = wire::halt_payload("tool", 4);
    auto applied = trust.apply_statement(wire::encode_statement(st, op.sk));
    REQUIRE_MESSAGE(applied, reason(applied));
    CHECK(reason(node::verify_manifest_bytes(vm.bytes, trust, now)).find("tool v4 was halted") != std::string::npos);
    // Another version of the same name is not halted, and the halt survives the trust file.
    CHECK_FALSE(trust.halted("tool", 5));
    auto back = node::TrustStore::parse_trust_file(trust.to_text(), "t");
    REQUIRE(back);
    CHECK(back->halted("tool", 4));
    CHECK(reason(wire::parse_halt_payload(wire::halt_payload("tool", 0))).find("version 0") != std::string::npos);

    // Created more than the skew ahead of this clock: refused; within it: accepted.
    auto fresh = node::TrustStore::from_key(op.pk);
    CHECK(node::verify_manifest_bytes(vm.bytes, fresh, vm.manifest.created - node::kMaxManifestClockSkewSeconds));
    CHECK(reason(node::verify_manifest_bytes(vm.bytes, fresh, vm.manifest.created - node::kMaxManifestClockSkewSeconds - 1))
              .find("lies in the future") != std::string::npos);
}

TEST_CASE("statement: a device is stale until an enrolled origin's freshness reaches it, refuses forged ones, and is stale again when the origin stops") {
    REQUIRE(crypto::init());
    TempDir dir("ps-fresh");
    transfer::Loop loop;
    auto op = crypto::generate_keypair();
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    auto enrolled = [&](const crypto::KeyPair& kp, Role role) {
        transfer::Identity id{kp.sk, kp.pk, role, "d1"};
        id.cert = wire::encode_cert(cert_for(kp.pk, role, "d1", now - 10, now + 3600), op.sk);
        return id;
    };
    auto options = [&](const std::string& name, std::uint16_t bootstrap) {
        node::NodeOptions o;
        o.data_dir = dir / name;
        o.dht.max_peer_req_per_sec = -1;
        if (bootstrap) o.dht.bootstrap = {"127.0.0.1:" + std::to_string(bootstrap)};
        o.trust = node::TrustStore::from_key(op.pk);
        o.freshness_interval_ms = 1'000;
        o.freshness_window_s = 3;
        return o;
    };
    auto dev_kp = crypto::generate_keypair();
    auto device = std::make_unique<node::Node>(loop, options("dev", 0), enrolled(dev_kp, Role::Peer));
    REQUIRE(device->start());
    CHECK(device->status().stale);  // nothing seen yet

    // Forgeries over a real connection, each refused and counted; the device stays stale.
    Hostile forger(loop);
    auto fkp = crypto::generate_keypair();
    forger.ids.push_back(enrolled(fkp, Role::Peer));
    forger.conns.push_back(transfer::Connection::dial(loop, "127.0.0.1", device->listen_port(), forger.ids.back(), forger));
    REQUIRE(run_until(loop, [&] { return !forger.ready_at.empty(); }, 5'000));
    auto origin_kp = crypto::generate_keypair();
    const auto origin_id = enrolled(origin_kp, Role::Origin);
    auto freshness = [&](const Bytes& cert, const crypto::SecretKey& sk, std::int64_t issued) {
        wire::Statement st;
        st.kind = wire::StatementKind::Freshness;
        st.issued = issued;
        st.payload = cert;
        forger.send(*forger.conns.back(), wire::MsgStatement{wire::encode_statement(st, sk)});
    };
    auto refused = [&](std::uint64_t n) {
        return run_until(loop, [&] { return device->status().freshness_rejected == n; }, 5'000);
    };
    freshness(forger.ids.back().cert, fkp.sk, now);  // a peer's own certificate: wrong role
    CHECK(refused(1));
    freshness(origin_id.cert, fkp.sk, now);  // the origin's certificate, signed by another key
    CHECK(refused(2));
    auto rogue = crypto::generate_keypair();  // an origin enrolled by an operator key the device does not trust
    freshness(wire::encode_cert(cert_for(origin_kp.pk, Role::Origin, "d1", now - 10, now + 3600), rogue.sk), origin_kp.sk,
              now);
    CHECK(refused(3));
    // The origin's own, but a replay older than the window (a freeze): not news, not counted as forged.
    freshness(origin_id.cert, origin_kp.sk, now - 60);
    // ... and one dated an hour ahead (it would hold off staleness for that hour): refused.
    freshness(origin_id.cert, origin_kp.sk, now + 3600);
    CHECK(refused(4));
    CHECK(device->status().fresh_issued == 0);
    CHECK(device->status().stale);

    // The enrolled origin's freshness reaches the device over a real connection.
    auto origin = std::make_unique<node::Node>(loop, options("origin", device->dht_port()), origin_id);
    REQUIRE(origin->start());
    CHECK(run_until(loop, [&] { return !device->status().stale; }, 30'000));
    CHECK(device->status().fresh_issued >= now);
    CHECK(device->status().freshness_rejected == 4);  // the origin's own are never refused
    CHECK(origin->status().freshness_rejected == 0);

    // The origin stops: within the window (3 s) plus a refresh, the device says stale again.
    bool down = false;
    origin->shutdown([&] { down = true; });
    REQUIRE(run_until(loop, [&] { return down; }, 10'000));
    const auto t0 = loop.now_ms();
    CHECK(run_until(loop, [&] { return device->status().stale; }, 6'000));
    MESSAGE("stale " << loop.now_ms() - t0 << " ms after the origin stopped (window 3 s)");
    origin.reset();
    bool dev_down = false;
    device->shutdown([&] { dev_down = true; });
    run_until(loop, [&] { return dev_down; }, 10'000);
}
