// Vocabulary of the protocol shared by every module (std only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ps {

// What a node is in the operator's network. The numeric values go on the wire.
enum class Role : std::uint8_t { Peer = 0, Super = 1, Origin = 2 };

inline std::string_view to_string(Role r) {
    switch (r) {
        case Role::Peer: return "peer";
        case Role::Super: return "super";
        case Role::Origin: return "origin";
    }
    return "?";
}

inline std::optional<Role> role_from_string(std::string_view s) {
    if (s == "peer") return Role::Peer;
    if (s == "super") return Role::Super;
    if (s == "origin") return Role::Origin;
    return std::nullopt;
}

// Peers served at once unless configured: a device keeps its uplink for its
// owner, a cache serves its whole domain, the origin admits a bounded few.
inline std::uint32_t default_upload_slots(Role r) {
    switch (r) {
        case Role::Super: return 64;
        case Role::Origin: return 16;
        case Role::Peer: return 4;
    }
    return 4;
}

inline std::optional<Role> role_from_wire(std::uint64_t v) {
    if (v > 2) return std::nullopt;
    return static_cast<Role>(v);
}

// Domain names: 1..63 chars of [a-z0-9-]. "*" is reserved for the cross-domain
// key where origins and super-nodes advertise.
inline bool valid_domain(std::string_view d) {
    if (d.empty() || d.size() > 63) return false;
    for (char c : d)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

}  // namespace ps
