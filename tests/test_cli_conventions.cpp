// Command-line conventions shared by every subcommand (issue 16): --version,
// one table of exit statuses, and exit status 2 for every usage error wherever
// it is caught (CLI11's parser or a command's own checks).
#include <doctest/doctest.h>

#include <regex>

#include "support.hpp"

using namespace ps::test;

namespace {

// Runs the binary and checks a usage error: status 2 and a message naming `needle`.
void check_usage_error(const TempDir& d, std::vector<std::string> args, const std::string& needle) {
    std::string shown;
    for (auto& a : args) shown += a + " ";
    auto r = run_cli(d, std::move(args));
    INFO("patchswarm " << shown << "-> status " << r.code << ", stderr: " << r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("cli: --version prints the CMake project version") {
    TempDir d("ps-cli-conv");
    auto r = run_cli(d, {"--version"});
    CHECK(r.code == 0);
    CHECK(r.out.rfind(std::string("patchswarm ") + PS_PROJECT_VERSION, 0) == 0);
    CHECK(r.out.find('\n') == r.out.size() - 1);  // one line (help2man reads its first line)
}

TEST_CASE("cli: an unknown command is named as unknown and exits 2") {
    TempDir d("ps-cli-conv");
    auto r = run_cli(d, {"frobnicate"});
    CHECK(r.code == 2);
    CHECK(r.err.find("unknown command 'frobnicate'") != std::string::npos);
    CHECK(r.err.find("subcommand is required") == std::string::npos);
    // Known commands after an unknown word are not mistaken for it.
    check_usage_error(d, {"frobnicate", "status"}, "unknown command 'frobnicate'");
    check_usage_error(d, {}, "no command given");
}

TEST_CASE("cli: every usage error exits 2, from the parser and from the commands' own checks") {
    TempDir d("ps-cli-conv");
    // CLI11: unknown flag, a value that does not convert, a missing required
    // argument, a stray argument (each would be 104..109 by CLI11's own codes).
    check_usage_error(d, {"keygen", "--bogus"}, "--bogus");
    check_usage_error(d, {"node", "--max-peers", "lots"}, "lots");
    check_usage_error(d, {"pause"}, "patch");
    check_usage_error(d, {"status", "a", "b"}, "b");
    check_usage_error(d, {"--bogus"}, "--bogus");
    // The commands' own checks of flags and settings.
    check_usage_error(d, {"publish", "--file", d / "x", "--name", "x", "--version", "1", "--out", d / "m"},
                      "give --key");
    check_usage_error(d, {"add", "--socket", d / "none.sock"}, "either --manifest or --name");
    check_usage_error(d, {"fetch", "--manifest", d / "m", "--data", d / "data", "--domain", "east", "--trust",
                          d / "t"},
                      "--out is required");
    check_usage_error(d, {"node", "--data", d / "data", "--domain", "east", "--role", "seed", "--trust", d / "t"},
                      "seed");
    check_usage_error(d, {"widen", "--key", d / "k", "--to", "50%", "--out", d / "w"},
                      "exactly one of --manifest or --name");
    check_usage_error(d, {"widen", "--key", d / "k", "--name", "fix", "--to", "50%", "--out", d / "w"},
                      "--name needs --version");
    check_usage_error(d, {"widen", "--key", d / "k", "--manifest", d / "m", "--to", "0%", "--out", d / "w"},
                      "--to '0%' is not a percentage above 0");
    check_usage_error(d, {"widen", "--key", d / "k", "--manifest", d / "m", "--to", "100.5%", "--out", d / "w"},
                      "--to '100.5%'");
    check_usage_error(d, {"sim", "--plots", "maybe", "--out", d / "sim"}, "maybe");
    check_usage_error(d, {"sim", "--model", "bittorrent", "--plots", "no", "--out", d / "sim"}, "bittorrent");
}

TEST_CASE("cli: --help ends with the exit-status table, and docs/cli.md has the same rows") {
    TempDir d("ps-cli-conv");
    auto r = run_cli(d, {"--help"});
    REQUIRE(r.code == 0);
    auto table = r.out.find("Exit status:");
    REQUIRE(table != std::string::npos);
    std::string docs = slurp(std::string(PS_SOURCE_DIR) + "/docs/cli.md");
    REQUIRE(!docs.empty());
    std::regex row(R"(\n  (\d)  ([^\n]+))");
    int rows = 0;
    for (std::sregex_iterator it(r.out.begin() + static_cast<long>(table), r.out.end(), row), end; it != end; ++it) {
        std::string expected = "| " + (*it)[1].str() + " | " + (*it)[2].str() + " |";
        INFO("docs/cli.md should have the row " << expected);
        CHECK(docs.find(expected) != std::string::npos);
        ++rows;
    }
    CHECK(rows == 5);
    // A subcommand's help is about that command only.
    auto sub = run_cli(d, {"status", "--help"});
    CHECK(sub.code == 0);
    CHECK(sub.out.find("--socket") != std::string::npos);
}
