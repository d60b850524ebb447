#include "sim/sim.hpp"

#include "sim/levels.hpp"

namespace ps::sim {

Result<RunResult> run(const Scenario& s) {
    if (auto st = validate(s); !st) return std::move(st).take_error();
    Population p = make_population(s);
    if (p.devices > kMaxDevices) return err("too many devices");
    return s.level == Level::Download ? run_download_level(s, p) : run_segment_level(s, p);
}

}  // namespace ps::sim
