// Fuzz target: the wire form of a held-segments bitfield (core/bitfield.hpp),
// read from peers (Have messages) and from the have file on disk. The first
// 3 bytes give the segment count (<= 2^24), the rest is the bitfield.
// Invariants: an accepted bitfield has that many bits, counts them right and
// encodes back to exactly the input.
#include <cstdint>
#include <cstdlib>

#include "core/bitfield.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::uint32_t n = (std::uint32_t{data[0]} << 16) | (std::uint32_t{data[1]} << 8) | data[2];
    ps::ByteView bits(data + 3, size - 3);
    auto b = ps::Bitfield::from_bytes(bits, n);
    if (!b) return 0;
    if (b->size() != n || b->to_bytes() != ps::Bytes(bits.begin(), bits.end())) std::abort();
    std::uint32_t count = 0;
    for (std::uint32_t i = 0; i < n; ++i) count += b->test(i);
    if (count != b->count() || b->all() != (count == n) || b->none() != (count == 0)) std::abort();
    return 0;
}
