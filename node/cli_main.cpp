// The command line as a whole: subcommands, --version, the exit-status
// conventions (node/cli.hpp) and how parse errors are reported.
#include <cstdio>
#include <cstring>
#include <iostream>

#include "node/cli.hpp"
#include "node/daemon.hpp"

namespace ps::cli {

const char* const kExitCodesHelp =
    "Exit status:\n"
    "  0  success\n"
    "  1  the operation failed (I/O, signature, network, node start-up)\n"
    "  2  usage error: bad flag, unknown command, bad value or setting\n"
    "  3  timed out (--timeout), or no manifest of that name was found in time\n"
    "  4  stopped by a signal before the download completed\n";

namespace {

// The first word that is not an option: what the user meant as the command.
const char* first_word(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (argv[i][0] != '-') return argv[i];
    return nullptr;
}

bool known_command(const CLI::App& app, const std::string& name) {
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
        if (sub->check_name(name)) return true;
    return false;
}

}  // namespace

int run(int argc, char** argv, const std::string& version, const std::vector<AddCommands>& more) {
    // Named here, not from argv[0]: help and man pages say "patchswarm".
    CLI::App app{"patchswarm: signed patch distribution over a peer-to-peer swarm", "patchswarm"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "patchswarm " + version, "Print the version and exit");
    node::set_build_version(version);
    Commands commands;
    add_manifest_commands(app, commands);
    add_enroll_command(app, commands);
    add_network_commands(app, commands);
    add_daemon_commands(app, commands);
    for (AddCommands add : more) add(app, commands);
    // Set after the subcommands exist, so that only the top-level help has it.
    app.footer(std::string(kExitCodesHelp) + "\nRun 'patchswarm COMMAND --help' for a command's options.\n");
    app.failure_message([](const CLI::App*, const CLI::Error& e) {
        return std::string("patchswarm: ") + e.what() + "\nRun 'patchswarm --help' (or 'patchswarm COMMAND --help') for usage.\n";
    });

    // CLI11 reads an unknown command as a stray argument and then complains
    // that "a subcommand is required"; name it instead. (The command is the
    // first argument; only --help and --version may come before it.)
    const char* word = first_word(argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "patchswarm: no command given; run 'patchswarm --help' for the commands\n");
        return kExitUsage;
    }
    if (word && argv[1] == word && !known_command(app, word)) {
        std::fprintf(stderr, "patchswarm: unknown command '%s'; run 'patchswarm --help' for the commands\n", word);
        return kExitUsage;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version end here with 0; every real parse error
        // (CLI11's own codes are 100-127) is a usage error.
        if (e.get_exit_code() == 0) return app.exit(e);
        // CLI11 checks required options before it objects to unknown ones:
        // `keygen --bogus` would say "--secret is required". Name the
        // argument nobody asked for first; it is the likelier typo.
        auto extras = app.remaining(true);
        if (!extras.empty() && dynamic_cast<const CLI::ExtrasError*>(&e) == nullptr) {
            std::string list;
            for (auto& x : extras) list += (list.empty() ? "" : " ") + x;
            std::fprintf(stderr, "patchswarm: unexpected argument(s): %s\n(also: %s)\n", list.c_str(), e.what());
            return kExitUsage;
        }
        app.exit(e);
        return kExitUsage;
    }
    for (auto& [sub, runner] : commands)
        if (sub->parsed()) return runner();
    return fail("", "no command given", kExitUsage);
}

}  // namespace ps::cli
