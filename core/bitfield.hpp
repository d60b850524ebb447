// A fixed-size set of segment indices: which segments a node holds.
// Wire form: ceil(n/8) bytes, most significant bit of byte 0 = segment 0, spare
// bits zero (so that every set has exactly one encoding).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/bytes.hpp"

namespace ps {

class Bitfield {
public:
    Bitfield() = default;
    explicit Bitfield(std::uint32_t n, bool all = false) : n_(n) {
        if (word_count() > kInline) big_.assign(word_count(), 0);
        if (all)
            for (std::uint32_t i = 0; i < n; ++i) set(i);
    }

    std::uint32_t size() const { return n_; }
    bool test(std::uint32_t i) const { return i < n_ && (data()[i / 64] >> (i % 64)) & 1u; }
    void set(std::uint32_t i) {
        if (i >= n_ || test(i)) return;
        data()[i / 64] |= std::uint64_t{1} << (i % 64);
        ++count_;
    }
    void reset(std::uint32_t i) {
        if (!test(i)) return;
        data()[i / 64] &= ~(std::uint64_t{1} << (i % 64));
        --count_;
    }
    std::uint32_t count() const { return count_; }
    bool all() const { return count_ == n_; }
    bool none() const { return count_ == 0; }
    bool operator==(const Bitfield& o) const {
        return n_ == o.n_ && count_ == o.count_ && std::ranges::equal(words(), o.words());
    }
    // The set as 64-bit words: index i is bit i % 64 of word i / 64.
    std::span<const std::uint64_t> words() const { return {data(), word_count()}; }

    Bytes to_bytes() const {
        Bytes out((n_ + 7) / 8, 0);
        for (std::uint32_t i = 0; i < n_; ++i)
            if (test(i)) out[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
        return out;
    }

    // Strict: the length must be exactly ceil(n/8) and spare bits zero.
    static std::optional<Bitfield> from_bytes(ByteView b, std::uint32_t n) {
        if (b.size() != (n + 7) / 8) return std::nullopt;
        Bitfield f(n);
        for (std::uint32_t byte = 0; byte < b.size(); ++byte)
            for (std::uint32_t bit = 0; bit < 8; ++bit) {
                bool on = b[byte] & (0x80u >> bit);
                std::uint32_t i = byte * 8 + bit;
                if (!on) continue;
                if (i >= n) return std::nullopt;
                f.set(i);
            }
        return f;
    }

private:
    // Up to kInline words (128 segments: a 128 MiB patch) live in the object
    // itself: a node makes a bitfield per peer and per Have it reads, and most
    // patches are that small. Larger sets use the heap.
    static constexpr std::size_t kInline = 2;
    std::size_t word_count() const { return (std::size_t{n_} + 63) / 64; }
    const std::uint64_t* data() const { return word_count() > kInline ? big_.data() : small_.data(); }
    std::uint64_t* data() { return word_count() > kInline ? big_.data() : small_.data(); }

    std::uint32_t n_ = 0;
    std::uint32_t count_ = 0;
    std::array<std::uint64_t, kInline> small_{};
    std::vector<std::uint64_t> big_;
};

}  // namespace ps
