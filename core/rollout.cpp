#include "core/rollout.hpp"

#include <cstring>

namespace ps::core {

namespace {

std::uint64_t mix(std::uint64_t z) {
    // SplitMix64's finaliser: every input bit moves every output bit.
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::uint64_t absorb(std::uint64_t h, const Hash32& bytes) {
    for (std::size_t i = 0; i < bytes.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, bytes.data() + i, sizeof w);
        h = mix(h ^ w) + 0x9E3779B97F4A7C15ull;
    }
    return h;
}

std::optional<std::int64_t> parse_delay(std::string_view t) {
    std::int64_t mult = 1;
    if (!t.empty()) switch (t.back()) {
            case 's': mult = 1; t.remove_suffix(1); break;
            case 'm': mult = 60; t.remove_suffix(1); break;
            case 'h': mult = 3600; t.remove_suffix(1); break;
            case 'd': mult = 86400; t.remove_suffix(1); break;
            default: break;
        }
    if (t.empty() || t.size() > 9) return std::nullopt;
    std::int64_t v = 0;
    for (char c : t) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v * mult;
}

}  // namespace

std::string format_percent(std::uint32_t fraction) {
    std::string s = std::to_string(fraction / 10'000);
    if (std::uint32_t rest = fraction % 10'000) {
        std::string frac = std::to_string(rest);
        frac.insert(0, 4 - frac.size(), '0');
        while (frac.back() == '0') frac.pop_back();
        s += "." + frac;
    }
    return s + "%";
}

std::optional<std::uint32_t> parse_percent(std::string_view t) {
    if (!t.empty() && t.back() == '%') t.remove_suffix(1);
    std::uint64_t whole = 0, frac = 0;
    std::size_t i = 0, digits = 0, decimals = 0;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, ++digits) whole = whole * 10 + (t[i] - '0');
    if (digits == 0 || digits > 3) return std::nullopt;
    if (i < t.size() && t[i] == '.') {
        for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9' && decimals < 4; ++i, ++decimals)
            frac = frac * 10 + (t[i] - '0');
        if (decimals == 0) return std::nullopt;
    }
    if (i != t.size()) return std::nullopt;
    while (decimals++ < 4) frac *= 10;
    std::uint64_t v = whole * 10'000 + frac;
    if (v > kWaveAll) return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

Result<std::vector<WaveStep>> parse_waves(std::string_view text) {
    std::vector<WaveStep> steps;
    std::size_t n = 0;
    for (;;) {
        ++n;
        auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        auto at = item.find('@');
        auto f = parse_percent(item.substr(0, at));
        std::optional<std::int64_t> d = std::int64_t{0};
        if (at != std::string_view::npos) d = parse_delay(item.substr(at + 1));
        if (!f || !d)
            return err("waves: step " + std::to_string(n) + " '" + std::string(item) +
                       "' is not PERCENT[@DELAY], e.g. 10% or 50%@6h");
        steps.push_back({*d, *f});
        if (steps.size() > kMaxWaveSteps || comma == std::string_view::npos) break;
    }
    if (auto st = validate_waves(steps); !st) return std::move(st).take_error();
    return steps;
}

Status validate_waves(std::span<const WaveStep> steps) {
    if (steps.size() > kMaxWaveSteps)
        return err("waves: " + std::to_string(steps.size()) + " steps is over the limit of " +
                   std::to_string(kMaxWaveSteps));
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const auto& s = steps[i];
        std::string which = "waves: step " + std::to_string(i + 1);
        if (s.after_s < 0) return err(which + " starts before the manifest was created");
        if (s.fraction == 0 || s.fraction > kWaveAll)
            return err(which + " has fraction " + std::to_string(s.fraction) + " millionths, outside 1.." +
                       std::to_string(kWaveAll));
        if (i > 0 && s.after_s <= steps[i - 1].after_s)
            return err(which + " is not later than step " + std::to_string(i));
        if (i > 0 && s.fraction < steps[i - 1].fraction)
            return err(which + " narrows the wave (" + format_percent(s.fraction) + " after " +
                       format_percent(steps[i - 1].fraction) + ")");
    }
    return {};
}

std::uint32_t wave_position(const Hash32& node_key, const Hash32& manifest_id) {
    std::uint64_t h = absorb(absorb(0x70617463687761ull, node_key), manifest_id);
    // The top 53 bits as a fraction of [0, 1), scaled to millionths.
    return static_cast<std::uint32_t>(((h >> 11) * static_cast<unsigned __int128>(kWaveAll)) >> 53);
}

std::uint32_t wave_fraction(std::span<const WaveStep> steps, std::int64_t created, std::int64_t now) {
    if (steps.empty()) return kWaveAll;
    std::uint32_t f = 0;
    for (const auto& s : steps)
        if (now - created >= s.after_s) f = s.fraction;
    return f;
}

WaveDecision decide_wave(const WaveInput& in) {
    WaveDecision d;
    d.position = wave_position(in.node_key, in.manifest_id);
    if (in.urgent || in.role != Role::Peer || in.steps.empty()) return d;
    std::uint32_t f = wave_fraction(in.steps, in.created, in.now);
    if (in.override_fraction > f) f = in.override_fraction < kWaveAll ? in.override_fraction : kWaveAll;
    d.fraction = f;
    d.in_wave = d.position < f;
    if (d.in_wave) return d;
    for (const auto& s : in.steps)
        if (s.fraction > d.position) {
            d.turn_at = in.created + s.after_s;
            break;
        }
    return d;
}

std::string describe_waves(std::span<const WaveStep> steps) {
    if (steps.empty()) return "none";
    std::string out;
    for (const auto& s : steps) {
        if (!out.empty()) out += ", ";
        out += format_percent(s.fraction) + (s.after_s ? " at +" + std::to_string(s.after_s) + "s" : " at once");
    }
    return out;
}

}  // namespace ps::core
