#include "node/enroll.hpp"

#include "node/keys.hpp"

namespace ps::node {

const char* to_string(CertRefusal r) {
    switch (r) {
        case CertRefusal::Missing: return "missing";
        case CertRefusal::Invalid: return "invalid";
        case CertRefusal::Untrusted: return "untrusted";
        case CertRefusal::Expired: return "expired";
        case CertRefusal::WrongRole: return "wrong_role";
        case CertRefusal::WrongDomain: return "wrong_domain";
        case CertRefusal::Revoked: return "revoked";
    }
    return "?";
}

std::uint64_t CertCounters::total() const {
    std::uint64_t n = 0;
    for (auto v : refused) n += v;
    return n;
}

std::optional<CertFailure> check_cert(ByteView bytes, const crypto::PublicKey& node_key, Role role,
                                      const std::string& domain, const TrustStore& trust, std::int64_t now_unix) {
    if (bytes.empty()) return CertFailure{CertRefusal::Missing, "no node certificate (the network requires enrollment)"};
    auto cert = wire::decode_cert(bytes);
    if (!cert) return CertFailure{CertRefusal::Invalid, cert.error()};
    if (cert->node_key != node_key) return CertFailure{CertRefusal::Invalid, "certificate: for another node key"};
    if (!trust.trusts(cert->operator_key))
        return CertFailure{CertRefusal::Untrusted, "certificate: signed by an operator key that is not trusted (" +
                                                       to_hex(ByteView(cert->operator_key).first(4)) + ")"};
    if (trust.node_revoked(node_key))
        return CertFailure{CertRefusal::Revoked, "certificate: node key " + to_hex(ByteView(node_key).first(4)) +
                                                     " was revoked by the operator"};
    if (cert->expires <= now_unix)
        return CertFailure{CertRefusal::Expired, "certificate: expired at " + format_utc(cert->expires)};
    if (cert->role != role)
        return CertFailure{CertRefusal::WrongRole, "certificate: enrolls a " + std::string(to_string(cert->role)) +
                                                       ", the node claims to be a " + std::string(to_string(role))};
    if (cert->domain != domain)
        return CertFailure{CertRefusal::WrongDomain,
                           "certificate: enrolls domain " + cert->domain + ", the node claims domain " + domain};
    return std::nullopt;
}

std::optional<CertFailure> check_record_cert(const wire::HolderRecord& r, const TrustStore& trust,
                                             std::int64_t now_unix) {
    return check_cert(r.cert, r.node_key, r.role, r.domain, trust, now_unix);
}

std::function<bool(const wire::HolderRecord&)> record_cert_check(TrustStore trust) {
    return record_cert_check(std::make_shared<SharedTrust>(std::move(trust)));
}

std::function<bool(const wire::HolderRecord&)> record_cert_check(std::shared_ptr<SharedTrust> trust) {
    return [trust](const wire::HolderRecord& r) {
        auto t = trust->get();
        return !t->require_enrollment() || !check_record_cert(r, *t, static_cast<std::int64_t>(std::time(nullptr)));
    };
}

std::string format_cert_file(ByteView cert) { return std::string(kCertFileHeader) + "\n" + to_hex(cert) + "\n"; }

Result<Bytes> parse_cert_file(std::string_view text, const std::string& what) {
    const std::string header = std::string(kCertFileHeader) + "\n";
    if (text.substr(0, header.size()) != header) return err(what + ": first line must be '" + kCertFileHeader + "'");
    auto body = text.substr(header.size());
    if (body.empty() || body.back() != '\n') return err(what + ": truncated (no final newline)");
    body.remove_suffix(1);
    if (body.size() > 2 * wire::kMaxCertBytes) return err(what + ": certificate too long");
    auto bytes = from_hex(body);
    if (!bytes) return err(what + ": second line is not hex");
    if (auto c = wire::decode_cert(*bytes); !c) return err(what + ": " + c.error());
    return std::move(*bytes);
}

Result<Bytes> load_cert_file(const std::string& path) {
    auto data = read_file_limited(path, 4096);
    if (!data) return err(path + ": " + data.error());
    return parse_cert_file(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()), path);
}

}  // namespace ps::node
