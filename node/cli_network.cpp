// Placeholder until the network commands land.
#include "node/cli.hpp"
namespace ps::cli {
void add_network_commands(CLI::App&, Commands&) {}
}  // namespace ps::cli
