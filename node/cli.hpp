// Command-line front end. Each family of subcommands registers itself on the
// CLI11 app and returns, per subcommand, the function that runs it. Runners
// return the process exit code and print a one-line reason on stderr on failure.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ps::cli {

using Runner = std::function<int()>;
using Commands = std::vector<std::pair<CLI::App*, Runner>>;

// keygen, publish, verify (and, later, sign, inspect, rotate-key).
void add_manifest_commands(CLI::App& app, Commands& out);
// node, fetch.
void add_network_commands(CLI::App& app, Commands& out);
// status, list, add, pause, resume, remove, reload: a running node's control socket.
void add_daemon_commands(CLI::App& app, Commands& out);
// `fetch --daemon SOCKET`: adds the download to a running node and shows progress.
int fetch_via_daemon(const std::string& socket, const std::string& manifest, const std::string& out, double timeout);

// sim (the discrete-event simulator).
void add_sim_commands(CLI::App& app, Commands& out);

// Prints "patchswarm <cmd>: <reason>" to stderr and returns exit code `code`.
int fail(const std::string& cmd, const std::string& reason, int code = 1);

}  // namespace ps::cli
