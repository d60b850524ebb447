// A fixed-bucket histogram of durations, in the shape Prometheus reads
// (cumulative buckets by upper bound, a sum and a count). Pure.
#pragma once

#include <array>
#include <cstdint>

namespace ps::core {

struct Histogram {
    // Upper bounds in seconds: a 1 MiB segment takes 0.1 s at 80 Mbit/s and
    // 10 s at 0.8 Mbit/s; the last bound catches requests near the time-out.
    static constexpr std::array<double, 11> kBounds{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60};
    std::array<std::uint64_t, kBounds.size()> in_bucket{};  // per bucket, not cumulative; above the last: count only
    std::uint64_t count = 0;
    double sum = 0;

    void observe(double seconds) {
        ++count;
        sum += seconds;
        for (std::size_t i = 0; i < kBounds.size(); ++i)
            if (seconds <= kBounds[i]) {
                ++in_bucket[i];
                return;
            }
    }
    // Observations at most kBounds[i] (Prometheus' le="..." bucket).
    std::uint64_t cumulative(std::size_t i) const {
        std::uint64_t n = 0;
        for (std::size_t j = 0; j <= i && j < in_bucket.size(); ++j) n += in_bucket[j];
        return n;
    }
};

}  // namespace ps::core
