// Domain sizes: drawn from a heavy-tailed law, or read from a list.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "sim/scenario.hpp"

namespace ps::sim {

// Limits of a domain-sizes list.
inline constexpr std::uint64_t kMaxDomainSize = 100'000'000;
inline constexpr std::size_t kMaxDomainLines = kMaxDomains;
inline constexpr std::size_t kMaxDomainLineLength = 64;

// Parses one size per line: a whole number from 1 to kMaxDomainSize, optionally
// surrounded by blanks. Empty lines and lines starting with '#' are skipped.
// Errors name the line: "line 7: 'abc' is not a whole number from 1 to 100000000".
Result<std::vector<std::uint32_t>> parse_domain_sizes(std::string_view text);

// The sizes a run uses: s.domain_sizes if given, else drawn (s.domain_dist,
// s.domain_alpha, stream derived from s.seed) so that they sum to s.devices.
// Largest domains do not come first: the order is the draw order.
std::vector<std::uint32_t> domain_sizes(const Scenario& s);

}  // namespace ps::sim
