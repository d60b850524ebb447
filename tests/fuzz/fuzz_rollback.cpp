// Fuzz target: the rollback state file (node/trust.hpp RollbackGuard), read
// from disk at every start: a damaged one must be refused with a reason, never
// crash or be half-read. Invariants: an accepted file re-serialises to text
// that parses to the same text; the entry count stays within its bound.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/trust.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto g = ps::node::RollbackGuard::parse(text, "/nonexistent/fuzz-state");
    if (!g) {
        if (g.error().empty()) std::abort();
        return 0;
    }
    auto out = g->to_text();
    auto again = ps::node::RollbackGuard::parse(out, "/nonexistent/fuzz-state");
    if (!again || again->to_text() != out) std::abort();
    std::size_t lines = 0;
    for (char c : out) lines += c == '\n';
    if (lines > ps::node::kMaxRollbackEntries + 1) std::abort();
    return 0;
}
