// Fuzz target: holder records from the DHT (wire::decode_record) and the reader
// filter built on it (dht::select_holders). Corpus: tests/fuzz/corpus/record/,
// whose valid seeds are issued at kNow - 10 (see test_record.cpp, which writes them).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dht/keys.hpp"
#include "wire/record.hpp"

namespace {
constexpr std::int64_t kNow = 1'750'000'000;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ps::ByteView in(data, size);
    auto rec = ps::wire::decode_record(in, kNow, 3600);
    if (rec) {
        // Whatever decodes is a valid record that belongs under its own domain key.
        if (!ps::wire::validate_record_fields(*rec)) std::abort();
        if (!ps::dht::record_matches(*rec, rec->domain, rec->manifest_id)) std::abort();
        if (!ps::dht::record_fits_key(*rec, ps::dht::holder_key(rec->domain, rec->manifest_id)))
            std::abort();
        auto again = ps::wire::decode_record(in, kNow, 3600);
        if (!again || !(*again == *rec)) std::abort();
    } else if (rec.error().rfind("record", 0) != 0) {
        std::abort();  // every refusal carries a "record..." reason
    }
    std::vector<ps::Bytes> values{ps::Bytes(in.begin(), in.end()), ps::Bytes(in.begin(), in.end())};
    ps::dht::DropCounts drops;
    auto kept = ps::dht::select_holders(values, rec ? rec->domain : "a", rec ? rec->manifest_id : ps::Hash32{},
                                        kNow, 3600, 64, &drops);
    if (kept.size() != (rec ? 1u : 0u)) std::abort();
    return 0;
}
