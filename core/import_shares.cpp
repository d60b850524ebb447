#include "core/import_shares.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace ps::core {

ImportShares::ImportShares(std::uint32_t segments, Millis stall_after)
    : stall_after_(stall_after), owner_(segments, kNobody), owner_key_(segments), since_(segments, 0), taken_(segments) {}

std::uint64_t ImportShares::weight(const Key& key, std::uint32_t seg) {
    // Node keys are public keys: their first 8 bytes are already uniform.
    // SplitMix64's finaliser mixes in the segment.
    std::uint64_t k;
    std::memcpy(&k, key.data(), sizeof k);
    std::uint64_t z = k ^ (std::uint64_t{seg} + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ImportShares::assign(std::span<const Key> members, const Bitfield& lacking, const Bitfield& fetching, Millis now) {
    members_.assign(members.begin(), members.end());
    const auto n = static_cast<std::uint32_t>(owner_.size());
    for (std::uint32_t s = 0; s < n; ++s) {
        if (!lacking.test(s) || members_.empty()) {
            owner_[s] = kNobody;
            continue;
        }
        std::uint32_t best = 0;
        if (!taken_.test(s) && !fetching.test(s)) {
            std::uint64_t bw = weight(members_[0], s);
            for (std::uint32_t i = 1; i < members_.size(); ++i)
                if (auto w = weight(members_[i], s); w > bw) {
                    bw = w;
                    best = i;
                }
        }
        if (owner_[s] == kNobody || owner_key_[s] != members_[best]) {
            since_[s] = now;
            owner_key_[s] = members_[best];
        } else if (best != 0 && now >= since_[s] + stall_after_) {
            // Its member did not bring it in: the coordinator fetches it itself.
            taken_.set(s);
            best = 0;
            since_[s] = now;
            owner_key_[s] = members_[0];
        }
        owner_[s] = best;
    }
}

Bitfield ImportShares::share_of(std::size_t i) const {
    Bitfield b(static_cast<std::uint32_t>(owner_.size()));
    for (std::uint32_t s = 0; s < owner_.size(); ++s)
        if (owner_[s] == i) b.set(s);
    return b;
}

std::optional<ImportShares::Millis> ImportShares::next_deadline() const {
    std::optional<Millis> best;
    for (std::uint32_t s = 0; s < owner_.size(); ++s)
        if (owner_[s] != kNobody && owner_[s] != 0)
            best = std::min(best.value_or(~Millis{0}), since_[s] + stall_after_);
    return best;
}

}  // namespace ps::core
