// patchswarm: one binary for operators (keygen, publish, verify), cache admins
// and devices (node, fetch). The command line itself is node/cli_main.cpp.
#include <cstdio>
#include <cstdlib>

#include "crypto/crypto.hpp"
#include "node/cli.hpp"
#include "node/log.hpp"
#include "ps_version.hpp"  // generated at build time by cmake/version.cmake

int main(int argc, char** argv) {
    if (auto s = ps::crypto::init(); !s) {
        std::fprintf(stderr, "patchswarm: %s\n", s.error().c_str());
        return ps::cli::kExitFailure;
    }
    // Tracing for scripts and the demo; a daemon's --log-level overrides it.
    if (std::getenv("PATCHSWARM_DEBUG")) ps::log::set_level(ps::log::Level::Debug);
    // The simulator's commands are linked into this executable only.
    return ps::cli::run(argc, argv, PS_VERSION_STRING, {ps::cli::add_sim_commands});
}
