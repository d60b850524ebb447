// Small helpers shared by node/'s source files. Internal to node/.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

#include "core/bytes.hpp"
#include "crypto/crypto.hpp"

namespace ps::node::node_util {

inline std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

inline std::int64_t unix_now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// The first 4 bytes of a node key in hex, as logs show it.
inline std::string key_prefix(const crypto::PublicKey& k) { return to_hex(ByteView(k).first(4)); }

}  // namespace ps::node::node_util
