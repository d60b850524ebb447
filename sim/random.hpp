// Draws from ps::Rng streams: uniform, exponential, and independent streams
// derived from the run's seed (one per purpose, so that adding a draw in one
// place does not shift every other draw).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/rng.hpp"

namespace ps::sim {

// Stream ids.
enum class Stream : std::uint64_t { Domains = 1, Arrivals = 2, Online = 3, Matching = 4, Downloads = 5, Lookups = 6 };

inline Rng stream(std::uint64_t seed, Stream id) {
    // Two SplitMix64 steps over (seed, id): well-separated states for nearby seeds and ids.
    Rng mix(seed ^ (static_cast<std::uint64_t>(id) * 0xD1B54A32D192ED03ull));
    mix.next();
    return Rng(mix.next());
}

// Uniform in [0, 1) with 53 random bits.
inline double uniform(Rng& r) { return static_cast<double>(r.next() >> 11) * 0x1.0p-53; }

// Exponential with the given mean.
inline double exponential(Rng& r, double mean) { return -mean * std::log1p(-uniform(r)); }

}  // namespace ps::sim
