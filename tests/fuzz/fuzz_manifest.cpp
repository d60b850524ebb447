// Fuzz target: manifest decoding and verification of untrusted bytes.
// Invariants checked: no crash or sanitizer report on any input; a decoded
// manifest is valid and re-encodes to exactly the input (canonical form);
// verification against a fixed trust store never crashes.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "crypto/crypto.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool ready = ps::crypto::init().ok();
    if (!ready) std::abort();
    ps::ByteView in(data, size);
    auto m = ps::wire::decode_manifest(in);
    if (!m) return 0;
    if (!ps::wire::validate_manifest(*m)) std::abort();
    auto again = ps::wire::encode_manifest(*m);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
    // Geometry must stay within the declared size.
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < m->segment_count(); ++i) sum += m->segment_length(i);
    if (sum != m->total_size || m->segment_count() != m->segment_hashes.size()) std::abort();
    // A fixed key: almost every input fails here, which must be an error, not a crash.
    static const auto trust = ps::node::TrustStore::from_key(ps::crypto::PublicKey{});
    (void)ps::node::verify_manifest_bytes(in, trust, m->created);
    (void)ps::wire::check_segment(*m, 0,
                                  in.first(std::min<std::size_t>(size, m->segment_length(0))));
    return 0;
}
