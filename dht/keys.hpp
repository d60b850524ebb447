// dht/keys: where holder records live in the DHT, and which records a reader
// may accept from a given key.
//
// Keys are domain-separated hashes, so a node of domain "b" looking up its own
// key never meets domain "a"'s holders. The DHT stores whatever anyone puts, so
// readers must re-check every record against the key they asked for
// (record_matches / select_holders). Pure functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "wire/record.hpp"
#include "wire/summary.hpp"

namespace ps::dht {

using Key = std::array<std::uint8_t, 20>;

// The cross-domain pseudo-domain where origins and super-nodes advertise.
inline constexpr std::string_view kGlobalDomain = "*";

// BLAKE2b-256("patchswarm/holders/v1" || 0 || domain || 0 || manifest_id), first 20 bytes.
// Precondition: valid_domain(domain) or domain == "*" (neither contains a NUL,
// and manifest_id is fixed-size, so distinct (domain, id) pairs never share an input).
Key holder_key(std::string_view domain, const Hash32& manifest_id);
// holder_key("*", manifest_id).
Key global_holder_key(const Hash32& manifest_id);
// Where new manifests of a patch are announced:
// BLAKE2b-256("patchswarm/manifests/v1" || 0 || name), first 20 bytes.
Key manifest_key(std::string_view patch_name);
// Where super-nodes put their domain's rollout summary of a patch
// (wire/summary.hpp): BLAKE2b-256("patchswarm/summaries/v1" || 0 || manifest_id), first 20 bytes.
Key summary_key(const Hash32& manifest_id);
// A summary value a storing node keeps under `key`: valid, fresh, signed, and
// about the patch of that key. Its signer and seq go to *owner / *seq when given.
bool summary_fits_key(ByteView value, const Key& key, std::int64_t now_unix, std::int64_t max_age_s = 3600,
                      crypto::PublicKey* owner = nullptr,
                      std::uint64_t* seq = nullptr);
// Where signed operator statements live (one well-known key for the network):
// BLAKE2b-256("patchswarm/statements/v1"), first 20 bytes.
Key statements_key();

// True when a record read from holder_key(domain, manifest_id) belongs there:
// same manifest_id and, for a real domain, the same domain; for "*", any domain
// but only Role::Origin or Role::Super.
bool record_matches(const wire::HolderRecord&, std::string_view domain, const Hash32& manifest_id);

// True when `key` is a key under which `rec` may be stored: its own domain key,
// or the global key for origins and super-nodes. Used by storing nodes.
bool record_fits_key(const wire::HolderRecord& rec, const Key& key);

// Why select_holders dropped values; added to, never reset.
struct DropCounts {
    std::uint64_t invalid = 0;     // failed decode_record (garbage, forged, oversized, bad fields)
    std::uint64_t stale = 0;       // decode_record said stale or future
    std::uint64_t misplaced = 0;   // valid record, but not for this domain/manifest (record_matches)
    std::uint64_t superseded = 0;  // an older record (lower seq) from a node_key seen again
    std::uint64_t over_limit = 0;  // beyond max_records
    std::uint64_t unenrolled = 0;  // valid record, refused by the reader's enrollment check
};

// Turns the raw values of a get()/listen() on holder_key(domain, manifest_id) into
// the records a reader may use: decodes and verifies each, keeps only those that
// record_matches and `admit` (when set: the reader's enrollment check), keeps one record per node_key (highest seq, then latest issued),
// and returns at most max_records of them (this caps what anyone putting values
// under one key can make a device consider). Order: by node_key, so the result is deterministic.
std::vector<wire::HolderRecord> select_holders(const std::vector<Bytes>& values, std::string_view domain,
                                               const Hash32& manifest_id, std::int64_t now_unix,
                                               std::int64_t max_age_s = 3600,
                                               std::size_t max_records = 64,
                                               DropCounts* drops = nullptr,
                                               const std::function<bool(const wire::HolderRecord&)>& admit = {});

}  // namespace ps::dht
