// wire/cert: the node certificate ("enrollment"). An operator key signs that a
// node key may act in the network with one role in one domain until an expiry
// time. Nodes carry their certificate in the transfer handshake and in their
// holder records; whether the signing key is trusted (and not revoked) is the
// trust store's business (node/trust.hpp), not this module's.
//
// Encoding (canonical msgpack, one certificate has exactly one encoding):
//   [body: bin, signature: bin(64)]
//   body = [format=1, node_key bin(32), role u8, domain str, issued i64,
//           expires i64, operator_key bin(32)]
// The signature is Ed25519 by operator_key over
//   "patchswarm/node-cert/v1" NUL || body.
// Pure functions, safe from any thread. Format: docs/protocol.md.
#pragma once

#include <cstdint>
#include <string>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/types.hpp"
#include "crypto/crypto.hpp"

namespace ps::wire {

inline constexpr std::uint32_t kCertFormat = 1;
// A maximal certificate (63-byte domain, widest integers) is 218 bytes.
inline constexpr std::size_t kMaxCertBytes = 256;
// Longest validity an operator may grant in one certificate (10 years).
inline constexpr std::int64_t kMaxCertLifetimeSeconds = 10ll * 366 * 24 * 3600;

struct NodeCert {
    std::uint32_t format = kCertFormat;
    crypto::PublicKey node_key{};
    Role role = Role::Peer;
    std::string domain;  // valid_domain()
    std::int64_t issued = 0;   // unix seconds
    std::int64_t expires = 0;  // unix seconds, > issued, at most kMaxCertLifetimeSeconds later
    crypto::PublicKey operator_key{};  // who signed (checked against the trust store by the node)
    crypto::Signature signature{};

    bool operator==(const NodeCert&) const = default;
};

// Signs (operator_key and signature are set from `operator_secret`) and encodes.
Bytes encode_cert(NodeCert cert, const crypto::SecretKey& operator_secret);

// Decodes untrusted bytes: size and msgpack limits, canonical encoding only,
// field checks (domain, issued < expires within the lifetime), then the
// signature by the certificate's own operator_key. Does not check expiry
// against a clock nor whether the operator key is trusted.
// Errors start with "certificate: " and name what was wrong.
Result<NodeCert> decode_cert(ByteView);

}  // namespace ps::wire
