// Helpers for tests that drive core::Engine directly: a config, and the
// actions of one kind the engine has emitted so far.
#pragma once

#include <string>
#include <vector>

#include "core/engine.hpp"

namespace ps::core::testing {

inline EngineConfig config(const NodeKey& self, Role role, const std::string& domain) {
    EngineConfig c;
    c.self = self;
    c.role = role;
    c.domain = domain;
    return c;
}

// A node key of 32 equal bytes.
inline NodeKey filled_key(std::uint8_t b) {
    NodeKey k{};
    k.fill(b);
    return k;
}

template <typename T>
std::vector<T> take(Engine& e) {
    std::vector<T> out;
    for (auto& a : e.actions())
        if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
    return out;
}

}  // namespace ps::core::testing
