// The simulator (sim/): its inputs, its agreement with the paper's analysis
// (Theorem 1, Corollary 1), the qualitative results of the paper's Figure 13,
// super-nodes, the segment level driving the core, and reproducibility.
// Every run here is small: the large ones live in bench/sim_scaling.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "sim/domains.hpp"
#include "sim/sim.hpp"
#include "sim/theory.hpp"

using namespace ps;
using namespace ps::sim;

namespace {

RunResult must_run(const Scenario& s) {
    auto r = run(s);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error()));
    return std::move(r).value();
}

struct Stat {
    double mean = 0, se = 0;
    std::size_t n = 0;
};

// Mean and standard error of imports over the domains of each size.
std::map<std::uint32_t, Stat> imports_by_size(const RunResult& r) {
    std::map<std::uint32_t, std::vector<double>> by;
    for (std::size_t j = 0; j < r.domain_size.size(); ++j) by[r.domain_size[j]].push_back(r.domain_imports[j]);
    std::map<std::uint32_t, Stat> out;
    for (auto& [n, v] : by) {
        double sum = 0, sq = 0;
        for (double x : v) sum += x;
        double m = sum / static_cast<double>(v.size());
        for (double x : v) sq += (x - m) * (x - m);
        double sd = v.size() > 1 ? std::sqrt(sq / static_cast<double>(v.size() - 1)) : 0;
        out[n] = {m, sd / std::sqrt(static_cast<double>(v.size())), v.size()};
    }
    return out;
}

// The paper's setting for Theorem 1: P2P with locality, a download takes no
// time to speak of (1 MiB at 10 Gbit/s against a 1-minute online time), and a
// holder serves anyone (no slot limit), so a device imports exactly when no
// other device of its domain is online.
Scenario theorem_scenario(Arrival arrival, OnlineDist online, double online_minutes, std::vector<std::uint32_t> sizes,
                          std::uint32_t replicas, std::uint64_t seed) {
    Scenario s;
    s.model = Model::P2pLocality;
    s.arrival = arrival;
    s.poll_hours = 20;
    s.flash_minutes = 60;
    s.online_dist = online;
    s.online_minutes = online_minutes;
    s.patch_mib = 1;
    s.device = {10'000, 0, 0, 0};
    s.remote_peers = false;
    s.seed = seed;
    for (auto n : sizes)
        for (std::uint32_t k = 0; k < replicas; ++k) s.domain_sizes.push_back(n);
    return s;
}

}  // namespace

TEST_CASE("sim: domain-sizes list: one size per line, comments, and errors that name the line") {
    auto ok = parse_domain_sizes("# sizes\n3\n 10 \n\n7\r\n");
    REQUIRE(ok);
    CHECK(*ok == std::vector<std::uint32_t>{3, 10, 7});
    auto bad = parse_domain_sizes("3\n10\nabc\n");
    REQUIRE(!bad);
    CHECK(bad.error().find("line 3") != std::string::npos);
    CHECK(bad.error().find("abc") != std::string::npos);
    CHECK(!parse_domain_sizes("1\n0\n"));                      // zero devices
    CHECK(!parse_domain_sizes("-4\n"));                        // sign
    CHECK(!parse_domain_sizes("1.5\n"));                       // not whole
    CHECK(!parse_domain_sizes("100000001\n"));                 // over the hard limit
    CHECK(!parse_domain_sizes(std::string(100, '1') + "\n"));  // over the line length
    CHECK(!parse_domain_sizes("\n# nothing\n"));               // no sizes at all
    auto sum = parse_domain_sizes("99999999\n99999999\n");
    REQUIRE(!sum);  // adds up past the device limit
    CHECK(sum.error().find("line 2") != std::string::npos);
}

TEST_CASE("sim: drawn domain sizes add up to the devices, are heavy-tailed, and depend only on the seed") {
    Scenario s;
    s.devices = 1'000'000;
    s.domains = 3000;
    auto a = domain_sizes(s);
    REQUIRE(a.size() == 3000);
    std::uint64_t total = 0;
    std::uint32_t largest = 0, smallest = UINT32_MAX;
    for (auto n : a) {
        total += n;
        largest = std::max(largest, n);
        smallest = std::min(smallest, n);
    }
    CHECK(total == 1'000'000);
    CHECK(smallest >= 1);
    CHECK(largest > 20 * (total / 3000));  // a heavy tail: the largest is far above the mean
    CHECK(domain_sizes(s) == a);
    s.seed = 2;
    CHECK(domain_sizes(s) != a);
    s.domain_dist = DomainDist::Equal;
    auto e = domain_sizes(s);
    CHECK(*std::max_element(e.begin(), e.end()) - *std::min_element(e.begin(), e.end()) <= 1);
}

TEST_CASE("sim: Theorem 1 integrated numerically matches its closed forms, and Corollary 1 bounds it") {
    for (double rho_v : {1.0 / 1200, 1.0 / 240, 1.0 / 60}) {
        for (double n : {1.0, 20.0, 300.0, 1200.0, 4800.0}) {
            // Uniform requests over one period T, fixed online time b = rho T:
            // E = 1 - (1 - rho)^N + N (1 - rho)^N.
            TheoryInput poll{Arrival::Poll, 72'000, OnlineDist::Fixed, 72'000 * rho_v};
            double closed = 1 - std::pow(1 - rho_v, n) + n * std::pow(1 - rho_v, n);
            CHECK(theorem1_imports(poll, n) == doctest::Approx(closed).epsilon(1e-7));
            // Exponential requests, fixed b: E = (1 - e^(-rho N)) / (1 - e^(-rho)), towards 1/rho.
            TheoryInput expo{Arrival::PollExp, 72'000, OnlineDist::Fixed, 72'000 * rho_v};
            double closed_exp = -std::expm1(-rho_v * n) / -std::expm1(-rho_v);
            CHECK(theorem1_imports(expo, n) == doctest::Approx(closed_exp).epsilon(1e-7));
            // Corollary 1 for every arrival law with a non-increasing density.
            for (auto arr : {Arrival::Poll, Arrival::PollExp, Arrival::Flash})
                for (auto on : {OnlineDist::Fixed, OnlineDist::Exp}) {
                    TheoryInput in{arr, 72'000, on, 72'000 * rho_v};
                    CHECK(rho(in) == doctest::Approx(rho_v));
                    CHECK(theorem1_imports(in, n) >= corollary1_bound(rho_v, n) * (1 - 1e-9));
                }
        }
    }
    // The paper's numbers: one poll per 20 hours, 1 minute online: rho = 1/1200,
    // the estimate peaks at N = 1200 with (1/rho)/e = 441.5.
    TheoryInput paper{Arrival::Poll, 20 * 3600, OnlineDist::Fixed, 60};
    CHECK(rho(paper) == doctest::Approx(1.0 / 1200));
    CHECK(locality_estimate(rho(paper), 1200) == doctest::Approx(441.5).epsilon(0.001));
    CHECK(theorem1_imports(paper, 1200) == doctest::Approx(441.9).epsilon(0.001));
    CHECK(theorem1_imports(paper, 1200) > theorem1_imports(paper, 600));
    CHECK(theorem1_imports(paper, 1200) > theorem1_imports(paper, 2400));
}

TEST_CASE("sim: imports per domain agree with Theorem 1 for each arrival model and never fall below Corollary 1") {
    struct Case {
        Arrival arrival;
        OnlineDist online;
        double online_minutes;
        std::vector<std::uint32_t> sizes;
    };
    // rho = 1/1200 for the polls (one per 20 h, 1 min online), 1/240 with 5 min
    // online, 1/60 for the flash crowd (mean 60 min, 1 min online).
    std::vector<Case> cases{
        {Arrival::Poll, OnlineDist::Fixed, 1, {300, 1200, 4800}},
        {Arrival::Poll, OnlineDist::Exp, 1, {300, 1200, 4800}},
        {Arrival::Poll, OnlineDist::Fixed, 5, {60, 240, 960}},
        {Arrival::PollExp, OnlineDist::Fixed, 1, {300, 1200, 4800}},
        {Arrival::PollExp, OnlineDist::Exp, 5, {60, 240, 960}},
        {Arrival::Flash, OnlineDist::Fixed, 1, {20, 60, 240}},
        {Arrival::Flash, OnlineDist::Exp, 1, {20, 60, 240}},
    };
    std::uint64_t seed = 11;
    for (auto& c : cases) {
        auto s = theorem_scenario(c.arrival, c.online, c.online_minutes, c.sizes, 40, seed++);
        auto r = must_run(s);
        REQUIRE(r.completed == r.devices);
        auto in = theory_input(s);
        auto stats = imports_by_size(r);
        for (auto n : c.sizes) {
            const Stat& st = stats.at(n);
            double t1 = theorem1_imports(in, n), bound = corollary1_bound(rho(in), n);
            INFO(to_string(c.arrival), " ", to_string(c.online), " b=", c.online_minutes, " min, N=", n, ": simulated ",
                 st.mean, " +- ", st.se, ", Theorem 1 ", t1, ", Corollary 1 ", bound);
            // Within 4 standard errors (and 1%, for the finite download time).
            CHECK(std::fabs(st.mean - t1) <= 4 * st.se + 0.01 * t1);
            // Polls with 1 minute online: Theorem 1 exceeds the bound by less than one
            // copy, so the sample mean may sit a little under it by chance.
            CHECK(st.mean >= bound - 4 * st.se);
            if (t1 > bound + 10 * st.se) CHECK(st.mean > bound);
        }
        if (c.arrival == Arrival::Poll && c.online_minutes == 1) {
            // Every host arrives within one polling period: the peak of about 442 at N = 1200.
            CHECK(stats.at(1200).mean == doctest::Approx(442).epsilon(0.03));
            CHECK(stats.at(1200).mean > stats.at(300).mean);
            CHECK(stats.at(1200).mean > 3 * stats.at(4800).mean);
        }
        if (c.arrival == Arrival::PollExp && c.online_minutes == 1) {
            // Exponential requests and no time limit: imports keep rising towards 1/rho = 1200.
            CHECK(stats.at(4800).mean > stats.at(1200).mean);
            CHECK(stats.at(4800).mean > 0.9 * 1200);
            CHECK(stats.at(4800).mean < 1200);
        }
    }
}

TEST_CASE("sim: with one always-on super-node per domain, each domain imports one copy whatever its size") {
    Scenario s;
    s.domain_sizes = {1, 2, 5, 30, 200, 1000, 5000, 20'000};
    s.patch_mib = 4;
    for (auto model : {Model::Caching, Model::P2pLocality}) {
        for (bool at_release : {true, false}) {
            for (bool remote_supers : {false, true}) {
                s.model = model;
                s.supers = true;
                s.super_at_release = at_release;
                s.remote_supers = remote_supers;
                s.remote_peers = false;
                auto r = must_run(s);
                CHECK(r.completed == r.devices);
                CHECK(r.supers == s.domain_sizes.size());
                for (std::size_t j = 0; j < s.domain_sizes.size(); ++j) {
                    INFO(to_string(model), " at release ", at_release, " remote supers ", remote_supers,
                         ", domain of ", s.domain_sizes[j]);
                    CHECK(r.domain_imports[j] == 1.0);
                }
                // Pushed at the release, every cache's copy comes from the origin; pulled
                // on demand, caches that start later take it from other domains' caches.
                if (at_release || !remote_supers) CHECK(r.source_bytes == s.domain_sizes.size() * r.patch_bytes);
                else CHECK(r.source_bytes < s.domain_sizes.size() * r.patch_bytes);
            }
        }
    }
    // At segment level, where the super-node lists itself once it holds a segment
    // and devices meet it at their next lookup: still about one copy per domain.
    Scenario seg;
    seg.level = Level::Segment;
    seg.model = Model::Caching;
    seg.domain_sizes = {1, 10, 100, 1000};
    seg.patch_mib = 4;
    seg.remote_supers = false;
    auto r = must_run(seg);
    CHECK(r.completed == r.devices);
    for (std::size_t j = 0; j < seg.domain_sizes.size(); ++j) {
        INFO("segment level, domain of ", seg.domain_sizes[j]);
        CHECK(r.domain_imports[j] >= 1.0);
        CHECK(r.domain_imports[j] <= 1.5);
    }
}

TEST_CASE("sim: Figure 13 qualitatively: caches cut the source's load modestly, P2P uploading as much as downloaded below 10%") {
    // The paper's caches sat at the addresses that sent more than 25 requests and
    // served only the hosts behind them; here a domain stands for such an
    // address: 40,000 devices behind 10,000 addresses of heavy-tailed sizes.
    Scenario s;
    s.devices = 40'000;
    s.domains = 10'000;
    s.arrival = Arrival::Poll;
    s.cache_min_devices = 26;
    s.remote_supers = false;
    std::map<Model, RunResult> r;
    for (auto m : {Model::ClientServer, Model::Caching, Model::P2pLocality, Model::P2pStay, Model::P2pFull}) {
        s.model = m;
        r[m] = must_run(s);
        CHECK(r[m].completed == s.devices);
    }
    const double cs = static_cast<double>(r[Model::ClientServer].source_bytes);
    CHECK(cs == static_cast<double>(s.devices * r[Model::ClientServer].patch_bytes));
    double caching = static_cast<double>(r[Model::Caching].source_bytes) / cs;
    double full = static_cast<double>(r[Model::P2pFull].source_bytes) / cs;
    double stay = static_cast<double>(r[Model::P2pStay].source_bytes) / cs;
    double p2p = static_cast<double>(r[Model::P2pLocality].source_bytes) / cs;
    INFO("source load / client-server: caching ", caching, ", p2p ", p2p, ", p2p-stay ", stay, ", p2p-full ", full);
    // Caching: each cache costs one copy; devices without a cache cost one each.
    auto sizes = r[Model::Caching].domain_size;
    std::uint64_t expect = 0;
    for (auto n : sizes) expect += n >= s.cache_min_devices ? 1 : n;
    CHECK(r[Model::Caching].source_bytes == expect * r[Model::Caching].patch_bytes);
    CHECK(caching < 0.95);  // a cut...
    CHECK(caching > 0.5);   // ...but a modest one
    CHECK(full < 0.10);
    CHECK(stay <= p2p);
    CHECK(full <= p2p);
    // Figures 14 and 15: with locality, domains of 2,000 devices whose devices
    // stay 10 minutes import almost nothing; random matching imports nearly all.
    s.domains = 20;
    s.online_minutes = 10;
    s.model = Model::P2pRandom;
    auto rnd = must_run(s);
    s.model = Model::P2pLocality;
    auto loc = must_run(s);
    CHECK(rnd.imports_total() > 0.8 * static_cast<double>(s.devices));
    CHECK(loc.imports_total() < 0.01 * static_cast<double>(s.devices));
}

TEST_CASE("sim: segment level drives core::Download: every device completes and the bytes add up") {
    Scenario s;
    s.level = Level::Segment;
    s.devices = 3000;
    s.domains = 6;
    s.patch_mib = 6.5;  // a short last segment
    s.arrival = Arrival::Flash;
    s.flash_minutes = 10;
    s.online_minutes = 2;
    s.device = {20, 20, 8, 8192};
    std::map<Model, RunResult> r;
    for (auto m : {Model::ClientServer, Model::P2pRandom, Model::P2pLocality}) {
        s.model = m;
        r[m] = must_run(s);
        auto& x = r[m];
        INFO(to_string(m));
        CHECK(x.completed == s.devices);
        CHECK(x.delivered_bytes == (x.devices + x.supers) * x.patch_bytes);
        CHECK(x.requests >= x.devices * segment_count(s));
        CHECK(x.source_bytes >= x.bytes_by_class[static_cast<int>(core::SourceClass::Origin)]);
        double imports = 0;
        for (double v : x.domain_imports) imports += v;
        CHECK(imports * static_cast<double>(x.patch_bytes) ==
              doctest::Approx(static_cast<double>(x.bytes_by_class[2] + x.bytes_by_class[3])));
    }
    CHECK(r[Model::ClientServer].source_bytes == s.devices * r[Model::ClientServer].patch_bytes);
    // The peers carry most of the load, and locality keeps it inside the domains.
    CHECK(r[Model::P2pLocality].source_bytes < r[Model::ClientServer].source_bytes / 5);
    CHECK(r[Model::P2pLocality].imports_total() < 0.5 * r[Model::P2pRandom].imports_total());
    CHECK(r[Model::P2pLocality].bytes_by_class[0] > r[Model::P2pRandom].bytes_by_class[0]);
}

TEST_CASE("sim: the same seed gives the same result bit for bit") {
    auto fingerprint = [](const RunResult& r, const Scenario& s) {
        std::string f = domains_csv({r}, s) + source_load_csv({r}) + summary_table({r});
        f += std::to_string(r.source_bytes) + "/" + std::to_string(r.events) + "/" + std::to_string(r.requests) + "/" +
             std::to_string(r.timeouts) + "/" + std::to_string(r.wasted_bytes);
        for (auto b : r.bytes_by_class) f += "/" + std::to_string(b);
        return f;
    };
    for (auto level : {Level::Download, Level::Segment}) {
        Scenario s;
        s.level = level;
        s.model = Model::P2pLocality;
        // Segment level: a flash crowd on 5 Mbit/s uplinks, so that busy answers,
        // timeouts, cancels and wasted bytes all take part.
        s.devices = level == Level::Download ? 50'000 : 400;
        s.domains = 7;
        s.arrival = Arrival::Flash;
        s.flash_minutes = 10;
        s.online_dist = OnlineDist::Exp;
        s.seed = 1234;
        // Link delays (segment level): messages and segments arrive late.
        s.delay_local_ms = 1;
        s.delay_remote_ms = 20;
        auto a = must_run(s), b = must_run(s);
        INFO(to_string(level));
        CHECK(fingerprint(a, s) == fingerprint(b, s));
        CHECK(a.completion_p99 == b.completion_p99);
        s.seed = 1235;
        auto c = must_run(s);
        CHECK(fingerprint(a, s) != fingerprint(c, s));
    }
}

TEST_CASE("sim: invalid scenarios are refused with a reason") {
    Scenario s;
    s.devices = 5;
    s.domains = 10;
    auto r = run(s);
    REQUIRE(!r);
    CHECK(r.error().find("domains") != std::string::npos);
    s = {};
    s.patch_mib = 0;
    CHECK(!run(s));
    s = {};
    s.poll_hours = -1;
    CHECK(!run(s));
    s = {};
    s.level = Level::Segment;
    s.devices = kMaxSegmentLevelDevices + 1;
    s.domains = 10;
    CHECK(!run(s));
}
