#include <doctest/doctest.h>

#include "crypto/crypto.hpp"

using namespace ps;

TEST_CASE("crypto: sign and verify, tampering detected") {
    REQUIRE(crypto::init());
    auto kp = crypto::generate_keypair();
    auto msg = as_bytes("hello patch");
    auto sig = crypto::sign(kp.sk, msg);
    CHECK(crypto::verify(kp.pk, msg, sig));
    sig[3] ^= 1;
    CHECK_FALSE(crypto::verify(kp.pk, msg, sig));
    CHECK(kp.sk.public_key() == kp.pk);
    CHECK(crypto::SecretKey::from_seed(kp.sk.seed()).public_key() == kp.pk);
}

TEST_CASE("crypto: streaming hash equals one-shot hash") {
    REQUIRE(crypto::init());
    Bytes data(100000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31);
    crypto::Hasher h;
    h.update(ByteView(data).first(777));
    h.update(ByteView(data).subspan(777));
    CHECK(h.finish() == crypto::blake2b(data));
}

TEST_CASE("crypto: kx + secretstream round trip, tamper rejected") {
    REQUIRE(crypto::init());
    auto c = crypto::kx_keypair(), s = crypto::kx_keypair();
    auto ck = crypto::kx_client(c, s.pk);
    auto sk = crypto::kx_server(s, c.pk);
    REQUIRE(ck);
    REQUIRE(sk);
    CHECK(ck->tx == sk->rx);
    CHECK(ck->rx == sk->tx);
    crypto::StreamPush push;
    crypto::StreamPull pull;
    auto header = push.init(ck->tx);
    REQUIRE(pull.init(sk->rx, header));
    auto msg = as_bytes("segment bytes");
    Bytes cipher(msg.size() + crypto::kStreamOverhead);
    push.push(msg, cipher.data());
    Bytes tampered = cipher;
    tampered[5] ^= 0x40;
    Bytes plain(msg.size());
    bool final = true;
    crypto::StreamPull pull2;
    REQUIRE(pull2.init(sk->rx, header));
    CHECK_FALSE(pull2.pull(tampered, plain.data(), &final));
    REQUIRE(pull.pull(cipher, plain.data(), &final));
    CHECK_FALSE(final);
    CHECK(std::string(plain.begin(), plain.end()) == "segment bytes");
}
