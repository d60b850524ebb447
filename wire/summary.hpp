// wire/summary: the signed per-domain rollout summary a super-node puts into
// the DHT (dht::summary_key(manifest_id)) every few seconds, for the live
// dashboard (docs/daemon.md#dashboard): how many of its domain's nodes are
// online, hold the patch, completed it (counted from the domain's holder
// records, node::Node::rollout), what it imported, its bans and what it rejected.
//
// Like a holder record, a summary is an untrusted hint: decode_summary checks
// structure, limits, freshness and the signature by node_key; whether node_key
// is a super-node of that domain is the reader's check (node/dashboard.cpp).
// Canonical msgpack (one encoding per summary). Pure functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/crypto.hpp"

namespace ps::wire {

inline constexpr std::uint32_t kSummaryFormat = 1;
// Whole encoded summary, signature included; stays under OpenDHT's 600-byte
// single-packet value limit, like holder records.
inline constexpr std::size_t kMaxSummaryBytes = 560;
// Named "rejected" counters (segments, announcements, ...): at most this many,
// names of [a-z_] and at most kMaxCounterName bytes, sorted and distinct.
inline constexpr std::size_t kMaxSummaryCounters = 8;
inline constexpr std::size_t kMaxCounterName = 24;
// Node counts are capped: no domain's DHT get returns more than this.
inline constexpr std::uint32_t kMaxSummaryNodes = 1u << 20;

struct DomainSummary {
    std::uint32_t format = kSummaryFormat;
    std::string domain;            // valid_domain()
    Hash32 manifest_id{};          // the patch counted
    crypto::PublicKey node_key{};  // the super-node that counted (and signed)
    std::int64_t issued = 0;       // unix seconds
    std::uint64_t seq = 0;         // increases with each summary from the same node
    std::uint32_t online = 0;      // the domain's membership records
    std::uint32_t holders = 0;     // its holder records for the patch
    std::uint32_t complete = 0;    // ...of which hold every segment (<= holders)
    std::uint64_t bytes_imported = 0;  // patch bytes the super-node took from the origin and other domains
    std::uint32_t bans = 0;            // peers the super-node banned for the patch
    std::vector<std::pair<std::string, std::uint64_t>> rejected;  // name -> count

    bool operator==(const DomainSummary&) const = default;
};

// Field checks that need no clock or key. Errors start with "summary: ".
Status validate_summary_fields(const DomainSummary&);

// Encodes and signs with "patchswarm/domain-summary/v1" NUL || body; the
// encoded node_key is node_secret.public_key() (summary.node_key is ignored).
Bytes encode_summary(const DomainSummary&, const crypto::SecretKey& node_secret);

// Decodes untrusted bytes: size and msgpack limits, canonical encoding,
// validate_summary_fields, freshness (issued within max_age_s before now and
// at most kMaxRecordClockSkewSeconds after), then the signature.
Result<DomainSummary> decode_summary(ByteView, std::int64_t now_unix, std::int64_t max_age_s = 600);

}  // namespace ps::wire
