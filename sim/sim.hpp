// The discrete-event simulator: the second driver of the sans-IO core.
//
//   auto r = ps::sim::run(scenario);   // deterministic in scenario.seed
//
// Two levels of detail (Scenario::level):
//  - Download: one flow per download, the whole patch from one holder chosen by
//    core::classify and the ladder's rung order; core::SeedPolicy decides when
//    devices stop serving. Compact: 10M devices fit in a few GiB.
//  - Segment: every downloader runs a core::Download (rarest first, the source
//    ladder, endgame, timeouts, back-offs), every holder a core::Uploads (slots,
//    per-peer queues, round-robin), every seeding device a core::SeedPolicy;
//    segments move as flows over modelled connections.
// Both share the flow-level network (sim/engine.hpp): per-host upload and
// download capacities shared among transfers.
#pragma once

#include "core/result.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace ps::sim {

Result<RunResult> run(const Scenario& s);

}  // namespace ps::sim
