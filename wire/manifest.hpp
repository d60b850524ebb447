// wire/manifest: the operator-signed description of one patch (name, version,
// sizes, per-segment hashes) and its canonical msgpack encoding.
//
// This unit encodes, decodes and checks the structure of manifests; it does no
// I/O and holds no trust policy (which keys are accepted, expiry, rollback: see
// node/trust.hpp). Pure functions, safe from any thread.
// Format reference: docs/manifest.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"

namespace ps::wire {

// Format 2 (what this build writes): file_hash is the root of the segment
// hashes (segment_root below), so publishing hashes every segment in parallel
// and never makes a sequential pass over the file. Format 1 (still read):
// file_hash is BLAKE2b-256 of the whole file.
inline constexpr std::uint32_t kManifestFormat = 2;
inline constexpr std::uint32_t kManifestFormatWholeFile = 1;
// Segment hashes are grouped in pieces of this many for the root (1,024
// hashes: 32 KiB), so that a piece of the list can be checked on its own.
inline constexpr std::uint32_t kHashesPerPiece = 1024;
inline constexpr std::uint32_t kDefaultSegmentSize = 1u << 20;

// ---- Hard limits. A manifest outside them is refused by encode-side checks
// (validate_manifest) and by the decoder alike. ----

// Patch names end up in file names, DHT keys and log lines: short, and only
// [a-z0-9._-] starting with [a-z0-9], so a name can never be a path or inject.
inline constexpr std::size_t kMaxNameLength = 64;
// Labels are shown to humans (inspect, logs): printable ASCII only, so a label
// cannot carry terminal escapes.
inline constexpr std::size_t kMaxLabelLength = 128;
// Below 64 KiB the hash list and per-segment request overhead dominate; above
// 16 MiB a single segment is too much to buffer and re-fetch on a hash failure.
inline constexpr std::uint32_t kMinSegmentSize = 64u << 10;
inline constexpr std::uint32_t kMaxSegmentSize = 16u << 20;
// 65,536 segments = 64 GiB at the default 1 MiB; the hash list is then one
// 2 MiB bin, which is what wire/msgpack_util's default bin limit allows.
inline constexpr std::uint32_t kMaxSegments = 1u << 16;
// A patch larger than 64 GiB is not a patch; also bounds the disk a device
// may be asked to reserve ("endless data").
inline constexpr std::uint64_t kMaxTotalSize = std::uint64_t{64} << 30;
// Longest signed validity window: 10 years. Freeze protection relies on
// expiry, so an absurd window is treated as a mistake.
inline constexpr std::int64_t kMaxValiditySeconds = std::int64_t{10} * 366 * 24 * 3600;
// Largest encoded manifest: the 2 MiB hash bin plus the fixed fields
// (well under 1 KiB). Callers may refuse bigger inputs before reading them.
inline constexpr std::size_t kMaxManifestBytes = std::size_t{kMaxSegments} * 32 + 1024;
// One wave step on the wire: 8 bytes of seconds, 4 of millionths, big-endian.
inline constexpr std::size_t kWaveStepBytes = 12;

struct Manifest {
    std::uint32_t format = kManifestFormat;
    std::string name;           // patch name, e.g. "ims-client"
    std::uint64_t version = 0;  // monotonically increasing per name, >= 1
    std::string label;          // human label, e.g. "4.2.1-hotfix" (may be empty)
    std::int64_t created = 0;   // unix seconds
    std::int64_t expires = 0;   // unix seconds, > created
    std::uint64_t total_size = 0;
    std::uint32_t segment_size = kDefaultSegmentSize;
    std::vector<Hash32> segment_hashes;  // BLAKE2b-256 of each segment; encoded as ONE flat bin
    Hash32 file_hash{};                  // format 2: segment_root(); format 1: BLAKE2b-256 of the whole file
    bool mandatory = false;
    // Optional rollout fields (docs/manifest.md): encoded only when set, so a
    // manifest without them has the original 13-field encoding.
    bool urgent = false;                  // skip waves and the devices' start delay
    std::vector<core::WaveStep> waves;    // staged rollout; empty: everyone at once
    Hash32 key_id{};                // key_id_of(signer's Ed25519 public key), full 32 bytes
    crypto::Signature signature{};  // Ed25519 over signing_bytes(); all zero = unsigned

    // Valid only for manifests that pass validate_manifest (sizes add up).
    std::uint32_t segment_count() const;
    std::uint64_t segment_offset(std::uint32_t i) const;
    std::uint32_t segment_length(std::uint32_t i) const;  // last one shorter
    bool is_signed() const;
};

// The root a format-2 manifest commits to:
//   piece_i = BLAKE2b-256("patchswarm-piece-v2\0" || segment hashes of piece i)
//   root    = BLAKE2b-256("patchswarm-root-v2\0" || total_size (u64 BE) ||
//                         segment_size (u32 BE) || piece_0 || piece_1 || ...)
// with pieces of kHashesPerPiece hashes (the last one shorter).
Hash32 segment_root(std::uint64_t total_size, std::uint32_t segment_size, const std::vector<Hash32>& segment_hashes);

// The name rule above (1..64 of [a-z0-9._-], first a letter or digit).
bool valid_patch_name(std::string_view);

// BLAKE2b-256 of a raw Ed25519 public key; how manifests name their signer.
Hash32 key_id_of(const crypto::PublicKey& pk);

// Checks every field against the limits above and that the sizes add up
// (segment_count == ceil(total_size / segment_size) == segment_hashes.size()).
// Errors name the field, e.g. "manifest: segment_size 1000 is outside 65536..16777216".
Status validate_manifest(const Manifest&);

// The exact message the operator signs: a domain-separation prefix
// ("patchswarm-manifest-v1" and a NUL) followed by the canonical encoding of
// every field but the signature.
Bytes signing_bytes(const Manifest&);
// The signed encoding: what goes in a .manifest file and on the wire.
// Precondition: validate_manifest(m) succeeds (otherwise decoding it fails).
Bytes encode_manifest(const Manifest&);
// Structure, canonical form (re-encoding must give the same bytes), hard
// limits; does NOT check the signature (see check_signature / node/trust.hpp).
Result<Manifest> decode_manifest(ByteView);
// BLAKE2b-256 of the signed encoding: the manifest's identity everywhere.
Hash32 manifest_id(ByteView signed_encoding);

// Signs m in place with sk (sets key_id and signature).
void sign_manifest(Manifest& m, const crypto::SecretKey& sk);
// Fails with "manifest is signed by key <a>, not by key <b>", "manifest is
// unsigned" or "bad signature".
Status check_signature(const Manifest&, const crypto::PublicKey&);

// Checks one segment's bytes against the manifest: length, then hash.
// Fails with "segment 17 does not match its hash" or a length mismatch.
Status check_segment(const Manifest&, std::uint32_t index, ByteView data);

// First 16 hex digits of a hash, for messages.
std::string short_hex(const Hash32&);

}  // namespace ps::wire
