// wire/record: the signed holder record a node publishes in the DHT to say
// "I hold segments of manifest M of domain D; dial me at host:port and prove
// node_key". Canonical msgpack encoding, Ed25519 signature by the node key.
//
// Records are untrusted hints (nothing read from the DHT is authoritative):
// decode_record checks structure, limits, freshness and the signature, but a
// valid record only proves that the holder of node_key wrote it, not that
// host:port is honest.
// Whether the record belongs under the key it was found at is checked by
// dht::record_matches. Pure functions, safe from any thread. Format: docs/dht.md.
#pragma once

#include <cstdint>
#include <string>

#include "core/bytes.hpp"
#include "wire/cert.hpp"
#include "core/result.hpp"
#include "core/types.hpp"
#include "crypto/crypto.hpp"

namespace ps::wire {

inline constexpr std::uint32_t kRecordFormat = 1;
// A record that carries the node's certificate (wire/cert.hpp) as a 12th field.
inline constexpr std::uint32_t kRecordFormatCert = 2;
// Whole encoded record, signature included. A maximal record (63-char domain,
// 39-char IPv6 host, every integer at its widest) is 273 bytes, about 500 with a
// maximal certificate; the cap stays under
// OpenDHT's 600-byte single-packet limit (MAX_PACKET_VALUE_SIZE), so a holder
// record never triggers multi-packet "value parts" (a spoofed-source get cannot
// be amplified into large replies).
inline constexpr std::size_t kMaxRecordBytes = 512;
// Longest textual IPv6 address (INET6_ADDRSTRLEN - 1).
inline constexpr std::size_t kMaxHostLength = 45;
// Privileged ports are never advertised: a forged record must not turn devices
// into a flood against port 22/80 of a victim (docs/security.md).
inline constexpr std::uint16_t kMinRecordPort = 1024;
// How far in the future `issued` may be (clock skew between devices).
inline constexpr std::int64_t kMaxRecordClockSkewSeconds = 300;
// Same bound as the manifest's segment count (wire/manifest.hpp kMaxSegments).
inline constexpr std::uint32_t kMaxRecordSegments = 1u << 16;

struct HolderRecord {
    std::uint32_t format = kRecordFormat;
    Role role = Role::Peer;
    std::string domain;            // valid_domain(): the node's own domain
    Hash32 manifest_id{};
    std::string host;              // canonical IPv4/IPv6 literal (inet_ntop form)
    std::uint16_t port = 0;        // >= kMinRecordPort
    crypto::PublicKey node_key{};  // the node's Ed25519 identity; the transfer handshake proves it
    std::uint32_t segments_held = 0;
    std::uint32_t segment_count = 0;  // <= kMaxRecordSegments, >= segments_held
    std::int64_t issued = 0;       // unix seconds
    std::uint64_t seq = 0;         // increases with each update from the same node
    // The node's encoded certificate (wire/cert.hpp), empty when it has none.
    // Set: the record is format 2, and decode_record checks that the
    // certificate decodes and names this node_key, role and domain (whether its
    // operator key is trusted is for the reader's trust store).
    Bytes cert{};

    bool operator==(const HolderRecord&) const = default;
};

// Checks the fields that do not depend on time or a signature: format, domain,
// host (a canonical, unicast, non-unspecified IP literal), port, segment counts.
// Errors name the field, e.g. "record: port 80 is below 1024".
Status validate_record_fields(const HolderRecord&);

// Encodes and signs. The signature is Ed25519 by node_secret over
// "patchswarm/holder-record/v1" NUL || canonical body. The encoded node_key is
// always node_secret.public_key() (record.node_key is ignored), so a record
// can never carry a key its signature does not match. Does not validate:
// an invalid record encodes, and decode_record then refuses it.
// Result size: at most kMaxRecordBytes for any record that passes validate_record_fields.
Bytes encode_record(const HolderRecord&, const crypto::SecretKey& node_secret);

// Decodes untrusted bytes: size and msgpack limits, canonical encoding only
// (one record has exactly one encoding), validate_record_fields, freshness
// (issued no more than max_age_s before now_unix and no more than
// kMaxRecordClockSkewSeconds after it), then the signature with record.node_key.
// Errors start with "record: " and name what was wrong.
Result<HolderRecord> decode_record(ByteView, std::int64_t now_unix, std::int64_t max_age_s = 3600);

}  // namespace ps::wire
