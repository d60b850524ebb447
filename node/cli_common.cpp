#include <cstdio>

#include "node/cli.hpp"

namespace ps::cli {

int fail(const std::string& cmd, const std::string& reason, int code) {
    std::fprintf(stderr, "patchswarm %s: %s\n", cmd.c_str(), reason.c_str());
    return code;
}

}  // namespace ps::cli
