// Pieces both levels share: the population, request times, online times, the
// seeding policy of each model, host roles, and the summary statistics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "core/types.hpp"
#include "sim/engine.hpp"
#include "sim/event_loop.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace ps::sim {

// Devices are numbered domain by domain: domain j holds [first[j], first[j] + sizes[j]).
struct Population {
    std::vector<std::uint32_t> sizes;
    std::vector<std::uint64_t> first;
    std::vector<std::string> names;  // "d0", "d1", ...: what core::classify compares
    std::uint64_t devices = 0;
};
Population make_population(const Scenario& s);

// Which domains get a super-node in this run.
std::vector<bool> super_domains(const Scenario& s, const Population& p);

// Every device's request time, in device order, and the devices sorted by it
// (ties by number).
struct Arrivals {
    std::vector<Time> at;
    std::vector<std::uint32_t> order;
};
Arrivals make_arrivals(const Scenario& s, std::uint64_t devices);

// The paper's B for each device, in device order (seconds).
std::vector<float> make_online_times(const Scenario& s, std::uint64_t devices);

// The seeding policy a device applies once its copy is complete, from what it
// knows then: its online time B, how long its download took and how long ago it
// asked. Client-server and caching devices never serve; P2P random/locality
// stay online for B from their request; P2P stay also for stay_factor x the
// download time after completing; P2P full until uploaded >= downloaded
// (bounded by seed_max_hours).
core::SeedPolicy seed_policy(const Scenario& s, double online_s, double download_s, double since_request_s);

// Percentiles of completion times into r.
void fill_completion_stats(RunResult& r, std::vector<float>& seconds);

// Origin bins (bytes) into r, at the scenario's bin width.
void fill_source_load(RunResult& r, const std::vector<double>& bins);

}  // namespace ps::sim
