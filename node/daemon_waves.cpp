// Rollout waves on a device (core/rollout.hpp decides): an automatic fetch of
// a staged patch waits until the schedule reaches this node's position; the
// node still knows the patch and reports it as waiting in status and list.
// Super-nodes and the origin are never held back (they pre-fetch), nor is a
// patch the user adds by hand, nor an urgent one.
#include <nlohmann/json.hpp>

#include "node/daemon.hpp"
#include "node/daemon_util.hpp"
#include "node/log.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

using json = nlohmann::json;
using namespace daemon_util;

core::WaveDecision Daemon::wave_decision(const VerifiedManifest& vm) const {
    core::WaveInput in;
    in.node_key = setup_.identity.key;
    in.manifest_id = vm.id;
    in.steps = vm.manifest.waves;
    in.created = vm.manifest.created;
    in.now = unix_now();
    auto o = wave_override_.find(vm.id);
    in.override_fraction = o == wave_override_.end() ? 0 : o->second;
    in.urgent = vm.manifest.urgent;
    in.role = setup_.identity.role;
    return core::decide_wave(in);
}

bool Daemon::wave_hold(const VerifiedManifest& vm) {
    auto d = wave_decision(vm);
    auto it = wave_wait_.find(vm.id);
    if (d.in_wave) {
        if (it != wave_wait_.end()) {
            retired_timers_.push_back(std::move(it->second.timer));
            wave_wait_.erase(it);
        }
        return false;
    }
    if (it != wave_wait_.end() && it->second.decision.turn_at == d.turn_at) return true;  // heard again
    WaveWait w{vm, d, nullptr};
    if (d.turn_at) {
        // Wake just after the step's second has begun, then decide again.
        std::int64_t ms = *d.turn_at * 1000 - unix_now_ms() + 50;
        w.timer = std::make_unique<transfer::Timer>(loop_);
        w.timer->start(static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 0)), 0, [this, id = vm.id] {
            auto e = wave_wait_.find(id);
            if (e == wave_wait_.end()) return;
            VerifiedManifest copy = e->second.vm;
            retired_timers_.push_back(std::move(e->second.timer));  // freed outside this callback
            wave_wait_.erase(e);
            loop_.post([this, alive = std::weak_ptr<bool>(alive_)] {
                if (auto a = alive.lock(); a && *a) retired_timers_.clear();
            });
            on_announced(copy);
        });
    }
    if (it != wave_wait_.end()) retired_timers_.push_back(std::move(it->second.timer));
    wave_wait_[vm.id] = std::move(w);
    ++wave_waits_;
    log::info("wave_wait", {{"id", to_hex(vm.id)},
                            {"name", vm.manifest.name},
                            {"version", vm.manifest.version},
                            {"position", d.position},
                            {"fraction", d.fraction},
                            {"turn_at", d.turn_at ? format_utc(*d.turn_at) : std::string("by operator only")}});
    return true;
}

// The patches waiting for their wave, as status and list show them.
json Daemon::waiting_json() const {
    json out = json::array();
    std::int64_t now = unix_now();
    for (auto& [id, w] : wave_wait_) {
        bool here = false;
        for (auto& s : node_->swarm_ids()) here |= s == id;
        if (here) continue;  // added by hand meanwhile
        json p{{"id", to_hex(id)},
               {"name", w.vm.manifest.name},
               {"version", w.vm.manifest.version},
               {"state", "waiting for wave"},
               {"progress", 0.0},
               {"out", ""},
               {"wave_position", w.decision.position / double(core::kWaveAll)},
               {"wave_fraction", w.decision.fraction / double(core::kWaveAll)},
               {"waves", core::describe_waves(w.vm.manifest.waves)}};
        if (w.decision.turn_at) {
            p["turn_at"] = *w.decision.turn_at;
            p["turn_at_utc"] = format_utc(*w.decision.turn_at);
            p["turn_in_s"] = std::max<std::int64_t>(*w.decision.turn_at - now, 0);
        } else {
            p["turn_at"] = nullptr;  // only an operator's widening reaches it
        }
        out.push_back(std::move(p));
    }
    return out;
}

}  // namespace ps::node
