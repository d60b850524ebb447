// Fuzz target: the node's TOML config (node/config.hpp). toml++ throws; the
// parser must turn every problem into an error naming the source. Invariants:
// no crash or sanitizer report, no exception escapes, errors are non-empty and
// start with the source name.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto c = ps::node::parse_config(text, "fuzz.toml");
    if (!c) {
        if (c.error().rfind("fuzz.toml", 0) != 0) std::abort();
        return 0;
    }
    (void)ps::node::validate_config(*c);
    if (c->bootstrap.size() > ps::node::kMaxConfigList || c->serve.size() > ps::node::kMaxConfigList) std::abort();
    return 0;
}
