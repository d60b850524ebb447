// node/enroll: node certificates under a trust store. An operator enrolls a
// node by signing its key, role and domain (wire/cert.hpp); a node whose trust
// store says "require-enrollment" takes part only with nodes whose certificate
// was signed by a key it trusts (not revoked), has not expired, and names the
// role and domain the node claims. Pure checks plus the certificate file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/types.hpp"
#include "crypto/crypto.hpp"
#include "node/trust.hpp"
#include "wire/cert.hpp"
#include "wire/record.hpp"

namespace ps::node {

// Why a certificate was refused; each outcome has its own counter.
enum class CertRefusal : std::uint8_t {
    Missing,      // no certificate presented
    Invalid,      // does not decode, bad signature, or for another node key
    Untrusted,    // signed by a key the trust store does not hold, or holds as revoked
    Expired,      // expires before now
    WrongRole,    // the node claims another role than its certificate's
    WrongDomain,  // the node claims another domain than its certificate's
    Revoked,      // a revocation statement revoked this node key's certificates
};
inline constexpr std::size_t kCertRefusals = 7;
const char* to_string(CertRefusal);

// Refusals counted by kind (status JSON and metrics).
struct CertCounters {
    std::uint64_t refused[kCertRefusals]{};
    void add(CertRefusal r) { ++refused[static_cast<std::size_t>(r)]; }
    std::uint64_t total() const;
};

struct CertFailure {
    CertRefusal why;
    std::string reason;  // "certificate expired at 2026-01-02T03:04:05Z", ...
};

// Checks that `cert` enrolls node_key with `role` in `domain`, under `trust`,
// at now_unix. Empty on success.
std::optional<CertFailure> check_cert(ByteView cert, const crypto::PublicKey& node_key, Role role,
                                      const std::string& domain, const TrustStore& trust, std::int64_t now_unix);
// The same for a holder record (its node key, role, domain and certificate).
std::optional<CertFailure> check_record_cert(const wire::HolderRecord&, const TrustStore&, std::int64_t now_unix);

// For dht::Config::record_check: a thread-safe check of a holder record's
// certificate under (a copy of) `trust` at the time of the call.
std::function<bool(const wire::HolderRecord&)> record_cert_check(TrustStore trust);
std::function<bool(const wire::HolderRecord&)> record_cert_check(std::shared_ptr<SharedTrust> trust);

// The certificate file: the first line "patchswarm-node-cert-v1", the second
// the encoded certificate in lowercase hex. Blocking file I/O.
inline constexpr const char* kCertFileHeader = "patchswarm-node-cert-v1";
std::string format_cert_file(ByteView cert);
Result<Bytes> parse_cert_file(std::string_view text, const std::string& what);
Result<Bytes> load_cert_file(const std::string& path);

}  // namespace ps::node
