// Small helpers shared by the daemon's source files (daemon*.cpp): clocks and
// control-protocol replies. Internal to node/.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "node/control.hpp"
#include "node/node_util.hpp"

namespace ps::node::daemon_util {

using node_util::unix_now;
using node_util::unix_now_ms;

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
