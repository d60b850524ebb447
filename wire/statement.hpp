// wire/statement: one channel for signed operator statements. A statement is a
// kind, a bounded payload, a sequence number and an issue time, signed by an
// operator key (freshness alone by the enrolled origin's node key). Nodes spread statements by gossip (MsgStatement) and find them
// in the DHT under one well-known key; each kind has a handler in the node
// (node/statements.hpp). A new kind is one enum value, a payload format here,
// and a handler there.
//
// Encoding (canonical msgpack, one statement has exactly one encoding):
//   [body: bin, signature: bin(64)]
//   body = [format=1, kind u8, seq u64, issued i64, payload bin, signer bin(32)]
// The signature is Ed25519 by signer over "patchswarm/statement/v1" NUL || body.
// Whether the signer is trusted is the node's business. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/crypto.hpp"

namespace ps::wire {

inline constexpr std::uint32_t kStatementFormat = 1;
inline constexpr std::size_t kMaxStatementPayload = 256;
// A maximal statement is about 380 bytes: one OpenDHT packet, one small frame.
inline constexpr std::size_t kMaxStatementBytes = 512;

// Freshness: the enrolled origin signs a new one this often; a node's
// freshness window (node.freshness_window) is two refreshes at least.
inline constexpr std::uint64_t kFreshnessIntervalMs = 60'000;
inline constexpr std::uint64_t kMinFreshnessWindowMs = 2 * kFreshnessIntervalMs;

enum class StatementKind : std::uint8_t {
    RevokeCert = 1,   // payload: the node key (32 bytes) whose certificates stop counting
    KeyRotation = 2,  // payload: a key-rotation statement (node/trust.hpp), signed by this same signer
    Halt = 3,         // payload: version (8, big-endian) then the patch name: never fetch, serve or install it
    Freshness = 4,    // payload: the origin's certificate; signed by the origin's node key: "the origin is alive"
    Widen = 5,        // payload: manifest id (32) then a fraction in millionths (4, big-endian): widen its wave
};
// The kind named, or nothing for a value this build does not know.
std::optional<StatementKind> statement_kind(std::uint64_t v);
const char* to_string(StatementKind);

struct Statement {
    std::uint32_t format = kStatementFormat;
    StatementKind kind = StatementKind::RevokeCert;
    std::uint64_t seq = 0;
    std::int64_t issued = 0;  // unix seconds
    Bytes payload;            // <= kMaxStatementPayload
    crypto::PublicKey signer{};
    crypto::Signature signature{};
    bool operator==(const Statement&) const = default;
};

// The payload of a Halt statement, and back (valid_patch_name, version >= 1).
Bytes halt_payload(const std::string& name, std::uint64_t version);
Result<std::pair<std::string, std::uint64_t>> parse_halt_payload(ByteView payload);

// The payload of a Widen statement: devices whose wave position for the
// manifest is below `fraction` (millionths, 1..core::kWaveAll) take it now.
struct Widening {
    Hash32 manifest_id{};
    std::uint32_t fraction = 0;
};
Bytes widen_payload(const Hash32& manifest_id, std::uint32_t fraction);
// Exactly 36 bytes and a fraction in 1..kWaveAll; errors start with "widen: ".
Result<Widening> parse_widen_payload(ByteView payload);

// Signs (signer and signature are set from `secret`) and encodes.
Bytes encode_statement(Statement s, const crypto::SecretKey& secret);
// Decodes untrusted bytes: size and msgpack limits, canonical form, a known
// kind, payload size, then the signature by the statement's own signer.
// Errors start with "statement: ".
Result<Statement> decode_statement(ByteView);
// The statement's id: BLAKE2b-256 of its encoding (duplicate suppression).
Hash32 statement_id(ByteView encoded);

}  // namespace ps::wire
