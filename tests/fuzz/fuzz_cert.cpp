// Fuzz target: node certificates from the handshake, holder records and
// certificate files (wire::decode_cert, node::parse_cert_file) and the check
// under a trust store (node::check_cert). Corpus: tests/fuzz/corpus/cert/.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/enroll.hpp"
#include "wire/cert.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ps::ByteView in(data, size);
    auto cert = ps::wire::decode_cert(in);
    if (cert) {
        // Whatever decodes re-encodes to the very same bytes (canonical) and
        // checks as itself under a trust store holding its operator key.
        if (size > ps::wire::kMaxCertBytes || cert->expires <= cert->issued) std::abort();
        auto again = ps::wire::decode_cert(in);
        if (!again || !(*again == *cert)) std::abort();
        auto trust = ps::node::TrustStore::from_key(cert->operator_key);
        auto f = ps::node::check_cert(in, cert->node_key, cert->role, cert->domain, trust, cert->expires - 1);
        if (f) std::abort();
        if (!ps::node::check_cert(in, cert->node_key, cert->role, cert->domain, trust, cert->expires)) std::abort();
    } else if (cert.error().rfind("certificate", 0) != 0) {
        std::abort();  // every refusal carries a "certificate..." reason
    }
    auto file = ps::node::parse_cert_file(std::string_view(reinterpret_cast<const char*>(data), size), "f");
    if (file && !ps::wire::decode_cert(*file)) std::abort();
    return 0;
}
