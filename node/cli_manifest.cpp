// Placeholder until the operator commands land.
#include "node/cli.hpp"
namespace ps::cli {
void add_manifest_commands(CLI::App&, Commands&) {}
}  // namespace ps::cli
