// Fuzz target: trust files and key-rotation statements (untrusted text from
// disk or from the network). Invariants checked: no crash or sanitizer report;
// an accepted trust file re-serialises to text that parses to the same store;
// a rotation line that parses formats back to the same line.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "crypto/crypto.hpp"
#include "node/trust.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool ready = ps::crypto::init().ok();
    if (!ready) std::abort();
    std::string_view text(reinterpret_cast<const char*>(data), size);

    auto t = ps::node::TrustStore::parse_trust_file(text, "fuzz");
    if (t) {
        auto again = ps::node::TrustStore::parse_trust_file(t->to_text(), "fuzz2");
        if (!again || again->to_text() != t->to_text()) std::abort();
        if (t->keys().empty() || t->keys().size() > ps::node::kMaxTrustedKeys) std::abort();
    }

    auto first_line = text.substr(0, text.find('\n'));
    auto r = ps::node::parse_rotation(first_line);
    if (r) {
        if (ps::node::format_rotation(*r) != first_line) std::abort();
        // Applying it to a store that trusts its signer must not crash, whatever the signature.
        auto store = ps::node::TrustStore::from_key(r->signer);
        (void)store.apply_rotation(*r);
    }
    return 0;
}
