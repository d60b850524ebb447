// Rollout waves on a device (core/rollout.hpp decides): an automatic fetch of
// a staged patch waits until the schedule reaches this node's position; the
// node still knows the patch and reports it as waiting in status and list.
// Super-nodes and the origin are never held back (they pre-fetch), nor is a
// patch the user adds by hand, nor an urgent one. An operator's widen
// statement raises a patch's wave at once (apply_widenings).
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
        w.timer->start(static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 0)), 0,
                       [this, id = vm.id] { wave_turn(id); });
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

// A waiting patch's turn may have come (its timer, or a widening): it stops
// waiting and is announced again, which decides anew.
void Daemon::wave_turn(const Hash32& id) {
    auto e = wave_wait_.find(id);
    if (e == wave_wait_.end()) return;
    VerifiedManifest copy = e->second.vm;
    retired_timers_.push_back(std::move(e->second.timer));  // it may be the timer calling: freed later
    wave_wait_.erase(e);
    loop_.post([this, alive = std::weak_ptr<bool>(alive_)] {
        if (auto a = alive.lock(); a && *a) retired_timers_.clear();
    });
    on_announced(copy);
}

// The operator's widenings (widen statements, kept in the trust store) become
// the overrides of the wave decision; each waiting patch whose wave now takes
// this node in starts its fetch at once (after the start delay, as any
// automatic fetch). At start and whenever a statement changed the trust store.
void Daemon::apply_widenings() {
    for (auto& [id, fraction] : setup_.trust.widenings()) wave_override_[id] = fraction;
    std::vector<Hash32> inside;
    for (auto& [id, w] : wave_wait_)
        if (wave_decision(w.vm).in_wave) inside.push_back(id);
    for (auto& id : inside) {
        log::info("wave_widened", {{"id", to_hex(id)}, {"fraction", wave_override_[id]}});
        wave_turn(id);
    }
}

// A waiting patch the operator halted stops waiting, so that neither its turn
// nor a widening starts its fetch (the node drops only the patches it takes
// part in; an automatic fetch still in its start delay checks for a halt when
// its timer fires). Whenever a statement changed the trust store.
void Daemon::drop_halted_waits() {
    for (auto it = wave_wait_.begin(); it != wave_wait_.end();) {
        const auto& m = it->second.vm.manifest;
        if (!setup_.trust.halted(m.name, m.version)) {
            ++it;
            continue;
        }
        log::warn("patch_halted", {{"name", m.name}, {"version", m.version}, {"was", "waiting for wave"}});
        retired_timers_.push_back(std::move(it->second.timer));
        it = wave_wait_.erase(it);
    }
}

// The fraction of devices a patch's wave takes in now (its schedule, or the
// operator's widening when higher) and the widening (null: none), in
// millionths divided out: what status, list and rollout show.
json Daemon::wave_json(const VerifiedManifest& vm) const {
    auto o = wave_override_.find(vm.id);
    const std::uint32_t widened = o == wave_override_.end() ? 0 : o->second;
    const std::uint32_t scheduled = core::wave_fraction(vm.manifest.waves, vm.manifest.created, unix_now());
    return {{"wave_fraction", std::max(scheduled, widened) / double(core::kWaveAll)},
            {"widened_to", widened ? json(widened / double(core::kWaveAll)) : json(nullptr)}};
}

// Adds wave_json's fields to a listed patch whose manifest is staged or widened.
void Daemon::add_wave_fields(json& p, const Hash32& id) const {
    auto m = manifests_.find(id);
    if (m == manifests_.end() || (m->second.manifest.waves.empty() && !wave_override_.count(id))) return;
    p.update(wave_json(m->second));
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
               {"waves", core::describe_waves(w.vm.manifest.waves)}};
        p.update(wave_json(w.vm));
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
