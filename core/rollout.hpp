// Rollout waves: which devices take a release now, decided by each device
// alone from its own node key and the manifest id, with no coordinator.
//
// A schedule is a list of steps (seconds after the manifest's creation,
// fraction of devices); the fraction in force at a time is that of the last
// step reached (0 before the first). A device's position is a hash of (node
// key, manifest id) mapped to [0, 1) in millionths; it is in the wave while
// its position is below the fraction. Fractions never fall from step to step,
// and an operator's override can only raise them (the larger of the two
// counts), so a device once in the wave stays in it.
//
// Pure functions of their inputs: no clock, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/types.hpp"

namespace ps::core {

// Fractions are in millionths: 1'000'000 is every device.
inline constexpr std::uint32_t kWaveAll = 1'000'000;
// Bounds the schedule a manifest may carry.
inline constexpr std::size_t kMaxWaveSteps = 16;

struct WaveStep {
    std::int64_t after_s = 0;   // seconds after the manifest's `created`
    std::uint32_t fraction = 0; // millionths of devices, 1..kWaveAll
    bool operator==(const WaveStep&) const = default;
};

// At most kMaxWaveSteps steps, times >= 0 and strictly increasing, fractions
// in 1..kWaveAll and not falling. The error names the offending step.
Status validate_waves(std::span<const WaveStep> steps);

// This node's place in the queue for this patch, in [0, kWaveAll).
std::uint32_t wave_position(const Hash32& node_key, const Hash32& manifest_id);

struct WaveInput {
    Hash32 node_key{};
    Hash32 manifest_id{};
    std::span<const WaveStep> steps;
    std::int64_t created = 0;       // the manifest's creation, unix seconds
    std::int64_t now = 0;           // unix seconds
    std::uint32_t override_fraction = 0;  // raised by an operator (0: none)
    bool urgent = false;            // the manifest skips waves
    Role role = Role::Peer;         // only devices wait for their wave
};

struct WaveDecision {
    bool in_wave = true;
    std::uint32_t position = 0;     // this node's position (millionths)
    std::uint32_t fraction = kWaveAll;  // the fraction in force now
    // When the schedule reaches this node (unix seconds); empty when it is
    // in the wave already or the schedule never reaches it (only an
    // operator's override can then).
    std::optional<std::int64_t> turn_at;
};

// The fraction the schedule has reached at `now` (0 before its first step,
// kWaveAll for an empty schedule: no waves).
std::uint32_t wave_fraction(std::span<const WaveStep> steps, std::int64_t created, std::int64_t now);

WaveDecision decide_wave(const WaveInput& in);

// Parses the operator's text: comma-separated steps PERCENT[@DELAY], e.g.
// "10%,50%@1h,100%@2d" (DELAY in s, m, h or d after the manifest's creation;
// no @ is at once). Checked with validate_waves; the error names the step.
Result<std::vector<WaveStep>> parse_waves(std::string_view text);

// "12.5%" or "12.5" -> 125000 millionths: at most 4 decimals, at most 100%;
// nothing for anything else. 0 is a valid answer (the caller decides).
std::optional<std::uint32_t> parse_percent(std::string_view text);
// 125000 -> "12.5%".
std::string format_percent(std::uint32_t fraction);

// "10% now, 50% at +3600s, 100% at +86400s" style text, for status and inspect.
std::string describe_waves(std::span<const WaveStep> steps);

}  // namespace ps::core
