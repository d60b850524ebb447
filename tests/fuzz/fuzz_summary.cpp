// Fuzz target: per-domain rollout summaries from the DHT (wire::decode_summary)
// and the storing nodes' check built on it (dht::summary_fits_key). Corpus:
// tests/fuzz/corpus/summary/, whose valid seeds are issued at kNow - 10
// (test_summary.cpp writes them with PS_WRITE_SUMMARY_CORPUS=1).
#include <cstdint>
#include <cstdlib>

#include "dht/keys.hpp"
#include "wire/summary.hpp"

namespace {
constexpr std::int64_t kNow = 1'750'000'000;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ps::ByteView in(data, size);
    auto s = ps::wire::decode_summary(in, kNow, 600);
    if (s) {
        // Whatever decodes is valid, re-decodes the same, and fits its own key.
        if (!ps::wire::validate_summary_fields(*s)) std::abort();
        auto again = ps::wire::decode_summary(in, kNow, 600);
        if (!again || !(*again == *s)) std::abort();
        if (!ps::dht::summary_fits_key(in, ps::dht::summary_key(s->manifest_id), kNow, 600)) std::abort();
    } else if (s.error().rfind("summary", 0) != 0) {
        std::abort();  // every refusal carries a "summary..." reason
    }
    return 0;
}
