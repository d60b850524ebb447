// Exponential back-off with jitter, for retries of something that may come up
// later (a bootstrap node that is not running yet). Pure: the caller supplies
// the random stream and does the waiting.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/rng.hpp"

namespace ps::core {

class Backoff {
public:
    // Delays first, 2*first, 4*first ... up to most, each drawn within
    // +-jitter_pct% of that step so that nodes started together spread out.
    Backoff(std::uint64_t first_ms, std::uint64_t most_ms, std::uint32_t jitter_pct = 25)
        : first_(std::max<std::uint64_t>(first_ms, 1)), most_(std::max(most_ms, first_)),
          jitter_pct_(std::min<std::uint32_t>(jitter_pct, 100)), step_(first_) {}

    // The delay before the next attempt; the step after it doubles.
    std::uint64_t next(Rng& rng) {
        const std::uint64_t base = step_;
        step_ = std::min(most_, step_ * 2);
        ++attempts_;
        const std::uint64_t spread = base * jitter_pct_ / 100;
        if (spread == 0) return base;
        return std::max<std::uint64_t>(1, base - spread + rng.below(2 * spread + 1));
    }
    // Success: the next failure starts again from the first step.
    void reset() {
        step_ = first_;
        attempts_ = 0;
    }
    std::uint32_t attempts() const { return attempts_; }

private:
    std::uint64_t first_, most_;
    std::uint32_t jitter_pct_;
    std::uint64_t step_;
    std::uint32_t attempts_ = 0;
};

}  // namespace ps::core
