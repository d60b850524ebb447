// The two levels of detail (internal to sim/).
#pragma once

#include "sim/common.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace ps::sim {

RunResult run_download_level(const Scenario& s, const Population& p);
RunResult run_segment_level(const Scenario& s, const Population& p);

}  // namespace ps::sim
