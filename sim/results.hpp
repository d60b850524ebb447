// What a run measured, and its CSV / table forms (strings; the caller writes
// the files).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/download.hpp"
#include "sim/scenario.hpp"

namespace ps::sim {

struct RunResult {
    Model model{};
    Level level{};
    std::uint64_t devices = 0;
    std::uint64_t supers = 0;               // super-nodes that took part
    std::uint64_t patch_bytes = 0;
    std::uint64_t completed = 0;            // devices that got the whole patch
    std::uint64_t source_bytes = 0;         // bytes the origin sent (wasted ones too)
    std::uint64_t source_bytes_client_server_equivalent = 0;  // devices x patch
    std::uint64_t delivered_bytes = 0;      // bytes that became part of a host's copy
    std::uint64_t wasted_bytes = 0;         // bytes sent and then dropped (cancelled, duplicate)
    std::array<std::uint64_t, core::kSourceClasses> bytes_by_class{};  // delivered, by rung of the receiver
    double bin_seconds = 300;
    std::vector<double> source_load;        // origin bytes per bin from the release
    std::vector<std::uint32_t> domain_size;
    std::vector<double> domain_imports;     // copies of the patch that entered each domain
    std::uint64_t events = 0;               // events processed
    double end_seconds = 0;                 // simulated time of the last event
    // Seconds from a device's request to its complete copy.
    double completion_p50 = 0, completion_p90 = 0, completion_p99 = 0, completion_max = 0;
    // Segment level: what the core decided and how often it had to recover.
    std::uint64_t requests = 0, busy = 0, cancels = 0, timeouts = 0;
    // Scenario::trace, CSV: upload bytes per second by sender
    // (second,role,domain,far,bytes: far = to another domain) and every
    // stored segment (seconds,domain,host,role,segment,from,from_role,from_domain).
    std::string trace_uploads, trace_segments;

    double imports_total() const;
    double source_fraction() const;  // source_bytes / client-server equivalent
};

// Per domain: domain,size,imports,theorem1,estimate,bound, where imports is
// the first run's and the last three are Theorem 1, N e^(-rho N) and
// Corollary 1 for that size under `s`. With several runs (the same population
// under several models), one more column per run: imports_<model>.
std::string domains_csv(const std::vector<RunResult>& runs, const Scenario& s);
// minute,<model>,... : origin bytes per bin for each run.
std::string source_load_csv(const std::vector<RunResult>& runs);
// A fixed-width table, one line per run.
std::string summary_table(const std::vector<RunResult>& runs);
// The analogue of Figure 15 for one run, per distinct domain size:
// size,domains,imports_mean,theorem1,estimate,bound,imports_se (mean over the
// domains of that size and its standard error).
std::string imports_by_size_csv(const RunResult& r, const Scenario& s);

}  // namespace ps::sim
