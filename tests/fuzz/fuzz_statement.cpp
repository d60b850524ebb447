// Fuzz target: signed operator statements from gossip and the DHT
// (wire::decode_statement) and their application to a trust store
// (node::TrustStore::apply_statement). Corpus: tests/fuzz/corpus/statement/.
#include <cstdint>
#include <cstdlib>

#include "node/trust.hpp"
#include "wire/statement.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ps::ByteView in(data, size);
    auto st = ps::wire::decode_statement(in);
    if (st) {
        if (size > ps::wire::kMaxStatementBytes || st->payload.size() > ps::wire::kMaxStatementPayload) std::abort();
        auto again = ps::wire::decode_statement(in);
        if (!again || !(*again == *st)) std::abort();
        // Under a store that trusts its signer: applied, or refused with a reason;
        // applying it again changes nothing, and the store's text reads back.
        auto trust = ps::node::TrustStore::from_key(st->signer);
        auto first = trust.apply_statement(in);
        if (first) {
            auto second = trust.apply_statement(in);
            if (!second || *second) std::abort();
            if (!ps::node::TrustStore::parse_trust_file(trust.to_text(), "t")) std::abort();
        } else if (first.error().empty()) {
            std::abort();
        }
    } else if (st.error().rfind("statement", 0) != 0) {
        std::abort();  // every refusal carries a "statement..." reason
    }
    return 0;
}
