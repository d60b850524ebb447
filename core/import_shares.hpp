// A domain's coordinated import: each segment its members lack is fetched from
// other domains or the origin by one member only, the others take it from
// that member. Without it every import enters a domain through its super-node,
// whose uplink must then carry a whole copy into the domain besides what it
// passes to other domains: on links like an operator's (8 Mbit/s up) that
// alone was twice the bound.
//
// The super-node coordinates (it is the member every device connects to):
// each segment the domain lacks goes to the member with the highest
// rendezvous weight for (member key, segment), among the super-node and the
// downloading devices connected to it. A member joining or leaving moves only
// its own segments. A segment its member has not brought into the domain
// within `stall_after` is taken over by the super-node for good. The
// super-node sends each device its share (wire Assign); a device fetches afar
// only its share (core::Download::set_import_share).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bitfield.hpp"

namespace ps::core {

class ImportShares {
public:
    using Key = std::array<std::uint8_t, 32>;
    using Millis = std::uint64_t;

    ImportShares(std::uint32_t segments, Millis stall_after);

    // members[0] is the coordinator itself. `lacking`: segments nobody in the
    // domain holds yet; `fetching`: those the coordinator is fetching already
    // (they stay its own). Re-decides every lacking segment's member.
    void assign(std::span<const Key> members, const Bitfield& lacking, const Bitfield& fetching, Millis now);
    // The segments assigned to members[i] at the last assign().
    Bitfield share_of(std::size_t i) const;
    // When an assigned segment's time runs out (the next assign() to call).
    std::optional<Millis> next_deadline() const;
    std::uint32_t taken_over() const { return taken_.count(); }

    // The rendezvous weight of (key, segment): deterministic, spread evenly.
    static std::uint64_t weight(const Key& key, std::uint32_t seg);

private:
    static constexpr std::uint32_t kNobody = ~std::uint32_t{0};
    Millis stall_after_;
    std::vector<Key> members_;           // as last given
    std::vector<std::uint32_t> owner_;   // index into members_, or kNobody
    std::vector<Key> owner_key_;         // whose since_ runs
    std::vector<Millis> since_;          // when the current owner got it
    Bitfield taken_;                     // taken over by the coordinator
};

}  // namespace ps::core
