// crypto: the only module that includes <sodium.h>. Bytes in, bytes out.
//
// Ed25519 signatures (operator and node keys), BLAKE2b-256 hashes (segments,
// manifests, DHT keys), X25519 key exchange and XChaCha20-Poly1305
// secretstream (per-connection encryption).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace ps::crypto {

inline constexpr size_t kPublicKeySize = 32;
inline constexpr size_t kSeedSize = 32;
inline constexpr size_t kSecretKeySize = 64;
inline constexpr size_t kSignatureSize = 64;
inline constexpr size_t kHashSize = 32;
inline constexpr size_t kKxKeySize = 32;
inline constexpr size_t kStreamHeaderSize = 24;
inline constexpr size_t kStreamOverhead = 17;  // secretstream ABYTES

using PublicKey = std::array<std::uint8_t, kPublicKeySize>;
using Signature = std::array<std::uint8_t, kSignatureSize>;
using Seed = std::array<std::uint8_t, kSeedSize>;

// Zeroes memory in a way the compiler may not elide.
void wipe(void* p, size_t n);

// An Ed25519 secret key; wiped on destruction, never printed.
class SecretKey {
public:
    SecretKey() = default;
    ~SecretKey() { wipe(bytes_.data(), bytes_.size()); }
    SecretKey(const SecretKey&) = default;
    SecretKey& operator=(const SecretKey&) = default;

    static SecretKey from_seed(const Seed& seed);
    Seed seed() const;
    PublicKey public_key() const;
    const std::uint8_t* data() const { return bytes_.data(); }

private:
    std::array<std::uint8_t, kSecretKeySize> bytes_{};
};

struct KeyPair {
    PublicKey pk;
    SecretKey sk;
};

// Initialises libsodium once; safe to call from any thread, any number of times.
Status init();

KeyPair generate_keypair();
Signature sign(const SecretKey& sk, ByteView msg);
bool verify(const PublicKey& pk, ByteView msg, const Signature& sig);

Hash32 blake2b(ByteView data);
// BLAKE2b-256 over the concatenation of several parts (domain separation).
Hash32 blake2b(std::initializer_list<ByteView> parts);

// Streaming BLAKE2b-256.
class Hasher {
public:
    Hasher();
    ~Hasher();
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;
    void update(ByteView data);
    Hash32 finish();

private:
    alignas(64) std::array<std::uint8_t, 384> state_;  // >= crypto_generichash_statebytes()
};

void random_bytes(std::uint8_t* out, size_t n);
std::uint64_t random_u64();

// Constant-time equality.
bool equal(ByteView a, ByteView b);

// ---- key exchange (ephemeral X25519, per connection) ----
struct KxKeyPair {
    std::array<std::uint8_t, kKxKeySize> pk{};
    std::array<std::uint8_t, kKxKeySize> sk{};
    ~KxKeyPair() { wipe(sk.data(), sk.size()); }
};
struct SessionKeys {
    std::array<std::uint8_t, kKxKeySize> rx{};
    std::array<std::uint8_t, kKxKeySize> tx{};
    ~SessionKeys() {
        wipe(rx.data(), rx.size());
        wipe(tx.data(), tx.size());
    }
};
KxKeyPair kx_keypair();
// The dialer is the client. Fails when the peer's public key is unacceptable.
Result<SessionKeys> kx_client(const KxKeyPair& self, ByteView server_pk);
Result<SessionKeys> kx_server(const KxKeyPair& self, ByteView client_pk);

// ---- secretstream (XChaCha20-Poly1305), one object per direction ----
class StreamPush {
public:
    StreamPush();
    ~StreamPush();
    StreamPush(const StreamPush&) = delete;
    StreamPush& operator=(const StreamPush&) = delete;
    // Returns the 24-byte header the peer needs to start pulling.
    std::array<std::uint8_t, kStreamHeaderSize> init(const std::array<std::uint8_t, kKxKeySize>& key);
    // Encrypts msg into out (must hold msg.size() + kStreamOverhead bytes).
    void push(ByteView msg, std::uint8_t* out, bool final = false);

private:
    alignas(16) std::array<std::uint8_t, 64> state_;  // >= crypto_secretstream_xchacha20poly1305_statebytes()
};

class StreamPull {
public:
    StreamPull();
    ~StreamPull();
    StreamPull(const StreamPull&) = delete;
    StreamPull& operator=(const StreamPull&) = delete;
    Status init(const std::array<std::uint8_t, kKxKeySize>& key, ByteView header);
    // Decrypts cipher into out (must hold cipher.size() - kStreamOverhead bytes).
    // Sets *final when the sender closed the stream. Fails on any tampering.
    Status pull(ByteView cipher, std::uint8_t* out, bool* final);

private:
    alignas(16) std::array<std::uint8_t, 64> state_;
};

}  // namespace ps::crypto
