// Small helpers shared by the daemon's source files (daemon*.cpp): clocks and
// control-protocol replies. Internal to node/.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <ctime>
#include <string>

#include "node/control.hpp"

namespace ps::node::daemon_util {

inline std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

inline std::int64_t unix_now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

inline std::string dump(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// {"v":1,"ok":true,...j}
inline std::string ok_reply(nlohmann::json j = nlohmann::json::object()) {
    j["v"] = control::kVersion;
    j["ok"] = true;
    return dump(j);
}

}  // namespace ps::node::daemon_util
