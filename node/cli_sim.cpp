// Placeholder until the simulator lands.
#include "node/cli.hpp"
namespace ps::cli {
void add_sim_commands(CLI::App&, Commands&) {}
}  // namespace ps::cli
