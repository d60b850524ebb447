// Small helpers shared by the daemon's source files (daemon*.cpp): clocks and
// control-protocol replies. Internal to node/.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "core/engine.hpp"
#include "node/control.hpp"
#include "node/node_util.hpp"

namespace ps::node::daemon_util {

using node_util::unix_now;
using node_util::unix_now_ms;

// The JSON key and metric label of a source class.
inline const char* source_key(int cls) {
    switch (static_cast<core::SourceClass>(cls)) {
        case core::SourceClass::SameDomainPeer: return "same_domain_peer";
        case core::SourceClass::SameDomainSuper: return "same_domain_super";
        case core::SourceClass::OtherDomain: return "other_domain";
        case core::SourceClass::Origin: return "origin";
    }
    return "unknown";
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

// A node listening on every address (0.0.0.0 or ::) must put a reachable
// address into its holder records: node.advertise, or else the one make_setup
// finds on the machine's interfaces. When there is none, this says why nobody
// can find the node through the DHT ("" when there is an address). The daemon
// logs it at start-up and `patchswarm status` shows it.
inline std::string advertise_warning(const std::string& advertise_host) {
    if (advertise_host != "0.0.0.0" && advertise_host != "::") return "";
    return "no address to advertise: the node listens on " + advertise_host +
           ", node.advertise is not set and no interface that is up has a global address, so its DHT records "
           "are refused and other nodes cannot find it; set node.advertise";
}

}  // namespace ps::node::daemon_util
