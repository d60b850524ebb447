// node/trust: which operator keys a node accepts, and the verification of
// manifests (and of patch files against them) under that trust.
//
// TrustStore is built from a public key file (one key) or a trust file (several
// keys plus signed key-rotation statements; format in docs/manifest.md).
// RollbackGuard persists the highest accepted version per patch name.
// Nothing here is used before it is verified: verify_* either returns a fully
// checked manifest or an error naming the failed check.
// Blocking file I/O: call from the CLI or a worker thread, not an event loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/crypto.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

inline constexpr const char* kTrustFileHeader = "patchswarm-trust-v1";
// A trust file is a short text file; these bound what a hostile one can cost.
inline constexpr std::size_t kMaxTrustFileBytes = 64 * 1024;
inline constexpr std::size_t kMaxTrustedKeys = 64;  // keys, revoked ones included
inline constexpr std::size_t kMaxRotations = 256;   // as TUF's max_root_rotations
inline constexpr std::size_t kMaxStatements = 1024;  // statements applied (revocations, halts)
// How far in the future a manifest's creation time may lie (clock skew).
inline constexpr std::int64_t kMaxManifestClockSkewSeconds = 300;

// A statement, signed by a currently trusted key, that introduces new_key and
// optionally revokes the signer. One text line:
//   rotate <new_pk hex> <revoke-signer 0|1> <created unix> <signer_pk hex> <signature hex>
struct KeyRotation {
    crypto::PublicKey new_key{};
    bool revoke_signer = false;
    std::int64_t created = 0;
    crypto::PublicKey signer{};
    crypto::Signature signature{};
};
// The exact bytes signed: "patchswarm-key-rotation-v1" NUL, new_key, one byte
// revoke flag, created as 8 bytes big-endian, signer.
Bytes rotation_signing_bytes(const KeyRotation&);
KeyRotation make_rotation(const crypto::SecretKey& current, const crypto::PublicKey& new_key,
                          bool revoke_signer, std::int64_t now_unix);
std::string format_rotation(const KeyRotation&);  // the line, no newline
Result<KeyRotation> parse_rotation(std::string_view line);

class TrustStore {
public:
    struct Key {
        crypto::PublicKey pk{};
        Hash32 key_id{};
        bool revoked = false;
    };

    // From a public key file or a trust file (told apart by their first line).
    static Result<TrustStore> load(const std::string& path);
    // Parses a trust file's text; `what` names it in errors.
    static Result<TrustStore> parse_trust_file(std::string_view text, const std::string& what);
    static TrustStore from_key(const crypto::PublicKey& pk);

    // The key that may have signed a manifest naming key_id. Fails with
    // "unknown signing key <prefix>" or "signing key <prefix> was revoked".
    Result<crypto::PublicKey> signer(const Hash32& key_id) const;
    bool trusts(const crypto::PublicKey& pk) const;  // known and not revoked

    // Applies a rotation statement: it must be signed by a trusted, unrevoked
    // key and must not re-introduce a revoked key. Applying a statement that
    // is already applied is a no-op. On error the store is unchanged.
    Status apply_rotation(const KeyRotation&);

    // Applies a signed operator statement (wire/statement.hpp) that changes
    // trust or is kept with it: a certificate revocation, a key rotation, a
    // halt or a widening. The signer must be trusted and not revoked. Returns
    // true when the store changed, false for a statement already applied (or
    // a widening no higher than the one kept); on error the store is
    // unchanged. Freshness is refused here ("statement: kind freshness does
    // not change trust").
    Result<bool> apply_statement(ByteView encoded);
    // Whether a revocation statement revoked this node key's certificates.
    bool node_revoked(const crypto::PublicKey& node_key) const;
    // Whether a halt statement stopped this release: verify_manifest_bytes
    // then refuses it ("... was halted by the operator").
    bool halted(const std::string& name, std::uint64_t version) const;
    // The highest fraction (millionths) a widen statement raised this
    // manifest's rollout wave to, 0 when none did. Widen statements are
    // monotone: one no higher than the fraction kept changes nothing (false
    // from apply_statement); a higher one replaces it, also in the text.
    std::uint32_t widened(const Hash32& manifest_id) const;
    std::map<Hash32, std::uint32_t> widenings() const;

    // Whether nodes must present a certificate signed by one of these keys
    // (node/enroll.hpp) to take part: the trust file line "require-enrollment".
    bool require_enrollment() const { return require_enrollment_; }
    void set_require_enrollment(bool on) { require_enrollment_ = on; }

    // The trust file text: anchor keys, "require-enrollment" when set, then
    // the rotations in the order applied.
    std::string to_text() const;
    const std::vector<Key>& keys() const { return keys_; }

private:
    Status add_anchor(const crypto::PublicKey& pk);
    std::vector<Key> keys_;
    std::vector<crypto::PublicKey> anchors_;
    std::vector<KeyRotation> rotations_;
    bool require_enrollment_ = false;
    std::vector<crypto::PublicKey> revoked_nodes_;
    std::vector<std::pair<std::string, std::uint64_t>> halted_;
    struct Widened {
        std::uint32_t fraction = 0;
        std::string line;  // its "statement <hex>" line in log_
    };
    std::map<Hash32, Widened> widened_;  // by manifest id, at most kMaxStatements
    Result<bool> apply_widen(ByteView encoded, ByteView payload);
    std::vector<Hash32> statement_ids_;  // applied statements (duplicates are no-ops)
    // The trust file's lines after the anchors, in the order applied: "rotate ..."
    // and "statement <hex>" (a statement is valid when its signer was trusted then).
    std::vector<std::string> log_;
};

// A key rotation as a statement payload: new key (32), revoke flag (1),
// created (8, big-endian), rotation signature (64); the signer is the
// statement's.
Bytes rotation_payload(const KeyRotation&);
// A statement file: "patchswarm-statement-v1", then the statement in hex.
inline constexpr const char* kStatementFileHeader = "patchswarm-statement-v1";
std::string format_statement_file(ByteView statement);
Result<Bytes> load_statement_file(const std::string& path);  // decoded and signature-checked
Result<KeyRotation> rotation_from_payload(ByteView payload, const crypto::PublicKey& signer);

// A trust store that changes while the node runs (statements applied by the
// node's loop) and is read from other threads (the DHT's store policies):
// readers take a snapshot, the writer replaces it whole. Thread-safe.
class SharedTrust {
public:
    explicit SharedTrust(TrustStore t) : cur_(std::make_shared<const TrustStore>(std::move(t))) {}
    std::shared_ptr<const TrustStore> get() const {
        std::lock_guard lock(mu_);
        return cur_;
    }
    void set(TrustStore t) {
        auto next = std::make_shared<const TrustStore>(std::move(t));
        std::lock_guard lock(mu_);
        cur_ = std::move(next);
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const TrustStore> cur_;
};

struct VerifiedManifest {
    wire::Manifest manifest;
    Hash32 id{};
    Bytes bytes;
    // Key ids the trust store that verified it holds as revoked. The rollback
    // guard lets a version accepted under one of these keys stop blocking
    // (recovery from a fast-forward with a compromised, since revoked, key).
    std::vector<Hash32> revoked_keys;
};

// Decodes, finds the signer in the trust store, checks the signature, then
// expiry against now_unix ("manifest expired at 2026-01-02T03:04:05Z").
Result<VerifiedManifest> verify_manifest_bytes(ByteView bytes, const TrustStore&,
                                               std::int64_t now_unix);
// For dht::Config::manifest_check: a thread-safe check returning the version of
// a manifest that verifies under (a copy of) `trust` at the time of the call.
std::function<std::optional<std::uint64_t>(ByteView)> manifest_version_check(TrustStore trust);
// The same under whatever `trust` holds at the time of each call.
std::function<std::optional<std::uint64_t>(ByteView)> manifest_version_check(std::shared_ptr<SharedTrust> trust);
// For dht::Config::statement_check: a statement whose signer `trust` holds
// and has not revoked (at the time of the call). Thread-safe.
std::function<bool(ByteView)> statement_signer_check(std::shared_ptr<SharedTrust> trust);
Result<VerifiedManifest> load_verified_manifest(const std::string& manifest_path, const TrustStore&,
                                                std::int64_t now_unix);

// Rollback protection: per patch name, the highest version accepted under each
// signing key (and that manifest's id), persisted in a small text state file
// that survives restarts:
//   patchswarm-rollback-v2
//   <name> <version> <manifest id hex> <signing key id hex>
// (A v1 file, lines without the key id, is still read; such an entry, written
// back with an all-zero key id, blocks whatever is revoked, until a higher
// version replaces it.)
// A missing file is an empty guard (first start); a damaged one is an error,
// never silently forgotten (that would re-open rollback).
//
// Fast-forward: whoever holds a trusted key can sign version 2^64-1 and lock
// the name. Two bounds: a version more than kMaxVersionJump above the accepted
// one is refused, and once the operator revokes that key (a signed rotation
// statement in the trust file), versions it signed no longer count: the
// highest version accepted under a key that is not revoked is the floor.
inline constexpr const char* kRollbackFileHeader = "patchswarm-rollback-v2";
inline constexpr const char* kRollbackFileHeaderV1 = "patchswarm-rollback-v1";
inline constexpr std::size_t kMaxRollbackEntries = 4096;  // lines (name, key) one node tracks
inline constexpr std::uint64_t kMaxVersionJump = std::uint64_t{1} << 32;

class RollbackGuard {
public:
    struct Entry {
        std::uint64_t version = 0;
        Hash32 id{};
        Hash32 key_id{};  // all zero: read from a v1 file, signer unknown
    };
    static Result<RollbackGuard> load(const std::string& path);
    // The state file's text, as load() reads it; accept() will write to `path`.
    static Result<RollbackGuard> parse(std::string_view text, const std::string& path);
    // The state file's text for the current entries (what accept() writes).
    std::string to_text() const;

    // Fails with "rollback: ims-client version 4 is older than accepted version 5",
    // "... version 5 was already accepted as a different manifest <id>", or
    // "... version N jumps more than 4294967296 past accepted version 5".
    // Entries signed by a key in v.revoked_keys are ignored.
    // Re-checking the very manifest already accepted (same id) succeeds.
    Status check(const VerifiedManifest&) const;
    // check(), then records the manifest and rewrites the state file atomically.
    // Entries of revoked keys, and v1 entries it supersedes, are dropped.
    // On any error nothing changes, in memory or on disk.
    Status accept(const VerifiedManifest&);
    // The highest accepted version of name, whatever key signed it.
    const Entry* find(const std::string& name) const;

private:
    // The highest entry of name not signed by one of `revoked`.
    const Entry* floor(const std::string& name, const std::vector<Hash32>& revoked) const;
    std::string path_;
    std::map<std::string, std::vector<Entry>> entries_;
};

// Segment hashes and file hash of a file, computed in one streaming pass with
// bounded memory (a few 1 MiB buffers per thread whatever the file or segment
// size), on every core (node/digest.cpp). The file hash is the manifest
// format's: the root of the segment hashes (format 2), or BLAKE2b of the whole
// file on a thread of its own (format 1). Segments are spread over
// `segment_threads` (0: every core, or the cores less one for format 1).
struct FileDigest {
    std::uint64_t total_size = 0;
    std::vector<Hash32> segment_hashes;
    Hash32 file_hash{};
};
Result<FileDigest> digest_file(const std::string& path, std::uint32_t segment_size,
                               std::uint32_t format = wire::kManifestFormat, unsigned segment_threads = 0);

// Fills a manifest's size, segment hashes and file hash from `path` (one
// streaming pass, segment size from `fields`) and validates the result; the
// caller set the other fields and signs it.
Result<wire::Manifest> manifest_for_file(const std::string& path, wire::Manifest fields);

// Checks a patch file against a verified manifest: size, then every segment
// ("segment 17 does not match its hash"), then the whole-file hash.
Status check_patch_file(const wire::Manifest&, const std::string& path);

// "2026-01-02T03:04:05Z"
std::string format_utc(std::int64_t unix_seconds);

}  // namespace ps::node
