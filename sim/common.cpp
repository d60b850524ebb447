#include "sim/common.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sim/domains.hpp"
#include "sim/random.hpp"

namespace ps::sim {

Population make_population(const Scenario& s) {
    Population p;
    p.sizes = domain_sizes(s);
    p.first.resize(p.sizes.size());
    p.names.resize(p.sizes.size());
    for (std::size_t j = 0; j < p.sizes.size(); ++j) {
        p.first[j] = p.devices;
        p.devices += p.sizes[j];
        p.names[j] = "d" + std::to_string(j);
    }
    return p;
}

std::vector<bool> super_domains(const Scenario& s, const Population& p) {
    std::vector<bool> has(p.sizes.size(), false);
    for (std::size_t j = 0; j < p.sizes.size(); ++j) {
        if (s.model == Model::Caching) has[j] = p.sizes[j] >= s.cache_min_devices;
        else if (devices_serve(s.model)) has[j] = s.supers;
    }
    return has;
}

Arrivals make_arrivals(const Scenario& s, std::uint64_t devices) {
    Arrivals a;
    a.at.resize(devices);
    Rng rng = stream(s.seed, Stream::Arrivals);
    const double mean = arrival_mean_seconds(s);
    for (auto& t : a.at) {
        double sec = s.arrival == Arrival::Poll ? uniform(rng) * mean : exponential(rng, mean);
        t = to_time(sec);
    }
    // Sort (time, device) pairs: one contiguous sort, then keep the devices.
    struct Key {
        Time t;
        std::uint32_t id;
    };
    std::vector<Key> keys(devices);
    for (std::uint64_t i = 0; i < devices; ++i) keys[i] = {a.at[i], static_cast<std::uint32_t>(i)};
    std::sort(keys.begin(), keys.end(), [](const Key& x, const Key& y) { return x.t != y.t ? x.t < y.t : x.id < y.id; });
    a.order.resize(devices);
    for (std::uint64_t i = 0; i < devices; ++i) a.order[i] = keys[i].id;
    return a;
}

std::vector<float> make_online_times(const Scenario& s, std::uint64_t devices) {
    std::vector<float> b(devices);
    Rng rng = stream(s.seed, Stream::Online);
    const double mean = s.online_minutes * 60;
    for (auto& x : b) x = static_cast<float>(s.online_dist == OnlineDist::Fixed ? mean : exponential(rng, mean));
    return b;
}

core::SeedPolicy seed_policy(const Scenario& s, double online_s, double download_s, double since_request_s) {
    constexpr double kForever = std::numeric_limits<double>::infinity();
    double rest = std::max(0.0, online_s - since_request_s);  // what is left of B
    switch (s.model) {
        case Model::ClientServer:
        case Model::Caching: return {.ratio = 0, .max_seconds = 0};
        case Model::P2pRandom:
        case Model::P2pLocality: return {.ratio = kForever, .max_seconds = rest};
        case Model::P2pStay: return {.ratio = kForever, .max_seconds = std::max(rest, s.stay_factor * download_s)};
        case Model::P2pFull: return {.ratio = 1.0, .max_seconds = s.seed_max_hours * 3600};
    }
    return {.ratio = 0, .max_seconds = 0};
}

void fill_completion_stats(RunResult& r, std::vector<float>& v) {
    if (v.empty()) return;
    auto at = [&](double q) {
        auto k = static_cast<std::size_t>(std::min<double>(static_cast<double>(v.size() - 1),
                                                           std::floor(q * static_cast<double>(v.size()))));
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
        return static_cast<double>(v[k]);
    };
    r.completion_p50 = at(0.50);
    r.completion_p90 = at(0.90);
    r.completion_p99 = at(0.99);
    r.completion_max = *std::max_element(v.begin(), v.end());
}

void fill_source_load(RunResult& r, const std::vector<double>& bins) {
    r.source_load = bins;
    while (!r.source_load.empty() && r.source_load.back() == 0) r.source_load.pop_back();
}

}  // namespace ps::sim
