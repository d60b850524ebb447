// Fuzz target: control-socket request lines (node/control.hpp), bytes from any
// local client. Invariants: no crash or sanitizer report; an accepted request
// has a known command within the bounds and survives a round trip through
// make_request; every error becomes a reply line that is valid JSON with
// ok=false and no raw newline (one reply per line).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/control.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace c = ps::node::control;
    std::string_view line(reinterpret_cast<const char*>(data), size);
    auto r = c::parse_request(line);
    if (!r) {
        auto reply = c::error_reply(r.error());
        if (reply.find('\n') != std::string::npos) std::abort();
        auto j = nlohmann::json::parse(reply, nullptr, false);
        if (j.is_discarded() || j.value("ok", true) || j.value("v", 0) != c::kVersion) std::abort();
        return 0;
    }
    if (line.size() > c::kMaxRequestLine || r->args.size() > c::kMaxRequestKeys) std::abort();
    for (auto& [k, v] : r->args)
        if (v.size() > c::kMaxArgument) std::abort();
    auto again = c::parse_request(c::make_request(r->cmd, r->args));
    if (!again || again->cmd != r->cmd || again->args != r->args) std::abort();
    return 0;
}
