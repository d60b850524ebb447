// patchswarm: one binary for operators (keygen, publish, verify), cache admins
// and devices (node, fetch).
#include <cstdio>
#include <cstdlib>

#include "crypto/crypto.hpp"
#include "node/cli.hpp"
#include "node/log.hpp"

int main(int argc, char** argv) {
    if (auto s = ps::crypto::init(); !s) {
        std::fprintf(stderr, "patchswarm: %s\n", s.error().c_str());
        return 1;
    }
    // Tracing for scripts and the demo; a daemon's --log-level overrides it.
    if (std::getenv("PATCHSWARM_DEBUG")) ps::log::set_level(ps::log::Level::Debug);
    CLI::App app{"patchswarm: signed patch distribution over a peer-to-peer swarm"};
    app.require_subcommand(1);
    ps::cli::Commands commands;
    ps::cli::add_manifest_commands(app, commands);
    ps::cli::add_network_commands(app, commands);
    ps::cli::add_daemon_commands(app, commands);
    ps::cli::add_sim_commands(app, commands);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    for (auto& [sub, run] : commands)
        if (sub->parsed()) return run();
    return 1;
}
