// Command-line front end. Each family of subcommands registers itself on the
// CLI11 app and returns, per subcommand, the function that runs it. Runners
// return the process exit code and print a one-line reason on stderr on failure.
#pragma once

#include <CLI/CLI.hpp>

#include "core/result.hpp"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ps::cli {

// Where a running node's control socket is: --socket, else the config file's,
// else the data folder's default, else $PATCHSWARM_SOCKET, else the packaged
// default /run/patchswarm/control.sock.
struct SocketArgs {
    std::string socket, config, data;
    void add_to(CLI::App* sub);
    Result<std::string> path() const;
};

using Runner = std::function<int()>;
using Commands = std::vector<std::pair<CLI::App*, Runner>>;

// keygen, publish, verify (and, later, sign, inspect, rotate-key).
void add_manifest_commands(CLI::App& app, Commands& out);
// enroll (node certificates, node/cli_enroll.cpp).
void add_enroll_command(CLI::App& app, Commands& out);
// node, fetch.
void add_network_commands(CLI::App& app, Commands& out);
// status, list, add, pause, resume, remove, reload: a running node's control socket.
void add_daemon_commands(CLI::App& app, Commands& out);
// `fetch --daemon SOCKET`: adds the download to a running node and shows progress.
// Either `manifest` (a file) or `name` (the newest the node knows or finds) is set.
int fetch_via_daemon(const std::string& socket, const std::string& manifest, const std::string& name,
                     const std::string& out, double timeout);

// The manifest id (hex) of the release `name` v`version` in a running node's
// list (the patches it serves, downloads or waits for); an error names what is missing.
Result<std::string> listed_manifest_id(const SocketArgs& s, const std::string& name, std::uint64_t version);

// `publish --announce`: has the running origin serve the file and announce it.
int announce_via_daemon(const SocketArgs& s, const std::string& manifest, const std::string& file);

// sim (the discrete-event simulator). Defined in node/cli_sim.cpp, which is
// compiled into the patchswarm executable only (not into ps_node): main.cpp
// hands it to run().
void add_sim_commands(CLI::App& app, Commands& out);
using AddCommands = void (*)(CLI::App& app, Commands& out);

// Exit status of every subcommand; docs/cli.md and the `--help` epilog list
// them (kExitCodesHelp). A usage error (bad flag, unknown command, bad value,
// wrong setting) is always kExitUsage, so that systemd's
// RestartPreventExitStatus=2 stops a unit that would fail the same way again.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;     // the operation failed (I/O, signature, network, start-up)
inline constexpr int kExitUsage = 2;       // bad flag, unknown command, bad value or setting
inline constexpr int kExitTimeout = 3;     // --timeout passed, or a patch name was not found in time
inline constexpr int kExitIncomplete = 4;  // stopped (signal) before the download completed
extern const char* const kExitCodesHelp;

// Prints "patchswarm <cmd>: <reason>" to stderr and returns exit code `code`.
int fail(const std::string& cmd, const std::string& reason, int code = kExitFailure);

// The whole command line: registers every subcommand (ps_node's, then those
// `more` adds), parses argv, runs the chosen one and returns the exit status.
// `version` is what --version prints.
int run(int argc, char** argv, const std::string& version, const std::vector<AddCommands>& more = {});

}  // namespace ps::cli
