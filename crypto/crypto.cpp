#include "crypto/crypto.hpp"

#include <sodium.h>

#include <cstring>

namespace ps::crypto {

static_assert(sizeof(crypto_generichash_state) <= 384);
static_assert(sizeof(crypto_secretstream_xchacha20poly1305_state) <= 64);
static_assert(crypto_sign_PUBLICKEYBYTES == kPublicKeySize);
static_assert(crypto_sign_SECRETKEYBYTES == kSecretKeySize);
static_assert(crypto_sign_SEEDBYTES == kSeedSize);
static_assert(crypto_sign_BYTES == kSignatureSize);
static_assert(crypto_kx_PUBLICKEYBYTES == kKxKeySize);
static_assert(crypto_kx_SESSIONKEYBYTES == kKxKeySize);
static_assert(crypto_secretstream_xchacha20poly1305_HEADERBYTES == kStreamHeaderSize);
static_assert(crypto_secretstream_xchacha20poly1305_ABYTES == kStreamOverhead);
static_assert(crypto_secretstream_xchacha20poly1305_KEYBYTES == kKxKeySize);

void wipe(void* p, size_t n) { sodium_memzero(p, n); }

Status init() {
    if (sodium_init() < 0) return err("libsodium failed to initialise");
    return {};
}

SecretKey SecretKey::from_seed(const Seed& seed) {
    SecretKey sk;
    PublicKey pk;
    crypto_sign_seed_keypair(pk.data(), sk.bytes_.data(), seed.data());
    return sk;
}

Seed SecretKey::seed() const {
    Seed s;
    crypto_sign_ed25519_sk_to_seed(s.data(), bytes_.data());
    return s;
}

PublicKey SecretKey::public_key() const {
    PublicKey pk;
    crypto_sign_ed25519_sk_to_pk(pk.data(), bytes_.data());
    return pk;
}

KeyPair generate_keypair() {
    Seed seed;
    randombytes_buf(seed.data(), seed.size());
    KeyPair kp{.pk = {}, .sk = SecretKey::from_seed(seed)};
    kp.pk = kp.sk.public_key();
    wipe(seed.data(), seed.size());
    return kp;
}

Signature sign(const SecretKey& sk, ByteView msg) {
    Signature sig;
    crypto_sign_detached(sig.data(), nullptr, msg.data(), msg.size(), sk.data());
    return sig;
}

bool verify(const PublicKey& pk, ByteView msg, const Signature& sig) {
    return crypto_sign_verify_detached(sig.data(), msg.data(), msg.size(), pk.data()) == 0;
}

Hash32 blake2b(ByteView data) {
    Hash32 h;
    crypto_generichash(h.data(), h.size(), data.data(), data.size(), nullptr, 0);
    return h;
}

Hash32 blake2b(std::initializer_list<ByteView> parts) {
    Hasher hs;
    for (auto p : parts) hs.update(p);
    return hs.finish();
}

Hasher::Hasher() {
    crypto_generichash_init(reinterpret_cast<crypto_generichash_state*>(state_.data()), nullptr, 0,
                            kHashSize);
}
Hasher::~Hasher() { wipe(state_.data(), state_.size()); }

void Hasher::update(ByteView data) {
    crypto_generichash_update(reinterpret_cast<crypto_generichash_state*>(state_.data()), data.data(),
                              data.size());
}

Hash32 Hasher::finish() {
    Hash32 h;
    crypto_generichash_final(reinterpret_cast<crypto_generichash_state*>(state_.data()), h.data(),
                             h.size());
    return h;
}

void random_bytes(std::uint8_t* out, size_t n) { randombytes_buf(out, n); }

std::uint64_t random_u64() {
    std::uint64_t v;
    randombytes_buf(&v, sizeof v);
    return v;
}

bool equal(ByteView a, ByteView b) {
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

KxKeyPair kx_keypair() {
    KxKeyPair kp;
    crypto_kx_keypair(kp.pk.data(), kp.sk.data());
    return kp;
}

Result<SessionKeys> kx_client(const KxKeyPair& self, ByteView server_pk) {
    if (server_pk.size() != kKxKeySize) return err("key exchange: peer key has the wrong size");
    SessionKeys k;
    if (crypto_kx_client_session_keys(k.rx.data(), k.tx.data(), self.pk.data(), self.sk.data(),
                                      server_pk.data()) != 0)
        return err("key exchange: peer key is not acceptable");
    return k;
}

Result<SessionKeys> kx_server(const KxKeyPair& self, ByteView client_pk) {
    if (client_pk.size() != kKxKeySize) return err("key exchange: peer key has the wrong size");
    SessionKeys k;
    if (crypto_kx_server_session_keys(k.rx.data(), k.tx.data(), self.pk.data(), self.sk.data(),
                                      client_pk.data()) != 0)
        return err("key exchange: peer key is not acceptable");
    return k;
}

StreamPush::StreamPush() { state_.fill(0); }
StreamPush::~StreamPush() { wipe(state_.data(), state_.size()); }

std::array<std::uint8_t, kStreamHeaderSize> StreamPush::init(
    const std::array<std::uint8_t, kKxKeySize>& key) {
    std::array<std::uint8_t, kStreamHeaderSize> header;
    crypto_secretstream_xchacha20poly1305_init_push(
        reinterpret_cast<crypto_secretstream_xchacha20poly1305_state*>(state_.data()), header.data(),
        key.data());
    return header;
}

void StreamPush::push(ByteView msg, std::uint8_t* out, bool final) {
    crypto_secretstream_xchacha20poly1305_push(
        reinterpret_cast<crypto_secretstream_xchacha20poly1305_state*>(state_.data()), out, nullptr,
        msg.data(), msg.size(), nullptr, 0,
        final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
              : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

StreamPull::StreamPull() { state_.fill(0); }
StreamPull::~StreamPull() { wipe(state_.data(), state_.size()); }

Status StreamPull::init(const std::array<std::uint8_t, kKxKeySize>& key, ByteView header) {
    if (header.size() != kStreamHeaderSize) return err("secretstream: header has the wrong size");
    if (crypto_secretstream_xchacha20poly1305_init_pull(
            reinterpret_cast<crypto_secretstream_xchacha20poly1305_state*>(state_.data()),
            header.data(), key.data()) != 0)
        return err("secretstream: invalid header");
    return {};
}

Status StreamPull::pull(ByteView cipher, std::uint8_t* out, bool* final) {
    if (cipher.size() < kStreamOverhead) return err("secretstream: message shorter than its tag");
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(
            reinterpret_cast<crypto_secretstream_xchacha20poly1305_state*>(state_.data()), out,
            nullptr, &tag, cipher.data(), cipher.size(), nullptr, 0) != 0)
        return err("secretstream: message failed authentication");
    if (final) *final = (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL);
    return {};
}

}  // namespace ps::crypto
