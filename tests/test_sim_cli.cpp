// `patchswarm sim` as a child process: the files it writes, and its errors.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

using ps::test::run_cli;
using ps::test::slurp;
using ps::test::TempDir;

namespace {

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

}  // namespace

TEST_CASE("sim cli: writes summary.json, domains.csv and source_load.csv for each model") {
    TempDir d;
    auto r = run_cli(d, {"sim", "--model", "client-server,p2p-locality", "--devices", "20000", "--domains", "25",
                         "--arrival", "flash", "--flash-minutes", "20", "--online-minutes", "2", "--online-dist", "exp",
                         "--patch-mib", "4", "--seed", "3", "--plots", "no", "--out", d / "out"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    auto summary = slurp(d / "out/summary.json");
    for (auto key : {"\"devices\": 20000", "\"source_bytes\"", "\"source_bytes_client_server_equivalent\": 83886080000",
                     "\"seconds_wall\"", "\"peak_rss_bytes\"", "\"p2p-locality\"", "\"client-server\""})
        CHECK_MESSAGE(summary.find(key) != std::string::npos, key);
    auto dom = lines(slurp(d / "out/domains.csv"));
    REQUIRE(dom.size() == 26);
    CHECK(dom[0].rfind("domain,size,imports,", 0) == 0);
    auto load = lines(slurp(d / "out/source_load.csv"));
    REQUIRE(load.size() > 2);
    CHECK(load[0] == "minute,client-server,p2p-locality");
    CHECK(load[1].rfind("0,", 0) == 0);
    CHECK(load[2].rfind("5,", 0) == 0);
    CHECK(r.out.find("p2p-locality") != std::string::npos);  // the summary table

    // The same seed again: the same files, byte for byte (but for the wall clock).
    auto again = run_cli(d, {"sim", "--model", "client-server,p2p-locality", "--devices", "20000", "--domains", "25",
                             "--arrival", "flash", "--flash-minutes", "20", "--online-minutes", "2", "--online-dist",
                             "exp", "--patch-mib", "4", "--seed", "3", "--plots", "no", "--out", d / "again"});
    REQUIRE_MESSAGE(again.code == 0, again.err);
    CHECK(slurp(d / "again/domains.csv") == slurp(d / "out/domains.csv"));
    CHECK(slurp(d / "again/source_load.csv") == slurp(d / "out/source_load.csv"));
}

TEST_CASE("sim cli: a domain-sizes file sets the population, and a bad line is named") {
    TempDir d;
    std::ofstream(d / "sizes.txt") << "# three domains\n100\n250\n50\n";
    auto r = run_cli(d, {"sim", "--model", "caching", "--domain-sizes", d / "sizes.txt", "--plots", "no", "--out",
                         d / "out"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    auto dom = lines(slurp(d / "out/domains.csv"));
    REQUIRE(dom.size() == 4);
    CHECK(dom[2].rfind("1,250,1,", 0) == 0);  // one copy per cached domain
    CHECK(slurp(d / "out/summary.json").find("\"devices\": 400") != std::string::npos);

    std::ofstream(d / "bad.txt") << "100\n250\n2x0\n";
    auto bad = run_cli(d, {"sim", "--domain-sizes", d / "bad.txt", "--plots", "no", "--out", d / "out2"});
    CHECK(bad.code != 0);
    CHECK(bad.err.find("line 3") != std::string::npos);
    CHECK(bad.err.find("2x0") != std::string::npos);

    auto mismatch = run_cli(d, {"sim", "--domain-sizes", d / "sizes.txt", "--devices", "5", "--plots", "no", "--out",
                                d / "out3"});
    CHECK(mismatch.code != 0);
    CHECK(mismatch.err.find("add up to 400") != std::string::npos);

    auto unknown = run_cli(d, {"sim", "--model", "bittorrent", "--out", d / "out4"});
    CHECK(unknown.code != 0);
    CHECK(unknown.err.find("bittorrent") != std::string::npos);
}
