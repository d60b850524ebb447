#include "sim/results.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "sim/theory.hpp"

namespace ps::sim {

namespace {

std::string num(double v, const char* fmt = "%.6g") {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

// Theorem 1 per distinct size (sizes repeat; each integral costs a little).
class TheoryCache {
public:
    explicit TheoryCache(const Scenario& s) : in_(theory_input(s)), rho_(rho(in_)) {}
    double theorem1(std::uint32_t n) {
        auto it = t1_.find(n);
        if (it == t1_.end()) it = t1_.emplace(n, theorem1_imports(in_, n)).first;
        return it->second;
    }
    double estimate(std::uint32_t n) const { return locality_estimate(rho_, n); }
    double bound(std::uint32_t n) const { return corollary1_bound(rho_, n); }

private:
    TheoryInput in_;
    double rho_;
    std::map<std::uint32_t, double> t1_;
};

}  // namespace

double RunResult::imports_total() const {
    double t = 0;
    for (double x : domain_imports) t += x;
    return t;
}

double RunResult::source_fraction() const {
    return source_bytes_client_server_equivalent
               ? static_cast<double>(source_bytes) / static_cast<double>(source_bytes_client_server_equivalent)
               : 0;
}

std::string domains_csv(const std::vector<RunResult>& runs, const Scenario& s) {
    std::string out = "domain,size,imports,theorem1,estimate,bound";
    if (runs.size() > 1)
        for (auto& r : runs) out += ",imports_" + std::string(to_string(r.model));
    out += "\n";
    if (runs.empty()) return out;
    TheoryCache tc(s);
    const RunResult& first = runs[0];
    for (std::size_t j = 0; j < first.domain_size.size(); ++j) {
        auto n = first.domain_size[j];
        out += std::to_string(j) + "," + std::to_string(n) + "," + num(first.domain_imports[j]) + "," +
               num(tc.theorem1(n)) + "," + num(tc.estimate(n)) + "," + num(tc.bound(n));
        if (runs.size() > 1)
            for (auto& r : runs) out += "," + num(j < r.domain_imports.size() ? r.domain_imports[j] : 0);
        out += "\n";
    }
    return out;
}

std::string source_load_csv(const std::vector<RunResult>& runs) {
    std::string out = "minute";
    std::size_t rows = 0;
    for (auto& r : runs) {
        out += "," + std::string(to_string(r.model));
        rows = std::max(rows, r.source_load.size());
    }
    out += "\n";
    double bin_min = runs.empty() ? 5 : runs[0].bin_seconds / 60;
    for (std::size_t b = 0; b < rows; ++b) {
        out += num(static_cast<double>(b) * bin_min, "%.10g");
        for (auto& r : runs) out += "," + num(b < r.source_load.size() ? r.source_load[b] : 0, "%.0f");
        out += "\n";
    }
    return out;
}

std::string summary_table(const std::vector<RunResult>& runs) {
    std::string out;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%-14s %-8s %11s %11s %12s %9s %12s %9s %9s %9s\n", "model", "level", "devices",
                  "completed", "source-GiB", "source-%", "imports", "p50-s", "p99-s", "events");
    out += buf;
    for (auto& r : runs) {
        std::snprintf(buf, sizeof buf, "%-14s %-8s %11llu %11llu %12.2f %8.2f%% %12.1f %9.1f %9.1f %9.3g\n",
                      std::string(to_string(r.model)).c_str(), std::string(to_string(r.level)).c_str(),
                      static_cast<unsigned long long>(r.devices), static_cast<unsigned long long>(r.completed),
                      static_cast<double>(r.source_bytes) / (1u << 30), 100 * r.source_fraction(), r.imports_total(),
                      r.completion_p50, r.completion_p99, static_cast<double>(r.events));
        out += buf;
    }
    return out;
}

std::string imports_by_size_csv(const RunResult& r, const Scenario& s) {
    std::map<std::uint32_t, std::vector<double>> by;
    for (std::size_t j = 0; j < r.domain_size.size(); ++j) by[r.domain_size[j]].push_back(r.domain_imports[j]);
    TheoryCache tc(s);
    std::string out = "size,domains,imports_mean,theorem1,estimate,bound,imports_se\n";
    for (auto& [n, v] : by) {
        double sum = 0, sq = 0;
        for (double x : v) sum += x;
        double mean = sum / static_cast<double>(v.size());
        for (double x : v) sq += (x - mean) * (x - mean);
        double se = v.size() > 1 ? std::sqrt(sq / static_cast<double>(v.size() - 1) / static_cast<double>(v.size())) : 0;
        out += std::to_string(n) + "," + std::to_string(v.size()) + "," + num(mean) + "," + num(tc.theorem1(n)) + "," +
               num(tc.estimate(n)) + "," + num(tc.bound(n)) + "," + num(se) + "\n";
    }
    return out;
}

}  // namespace ps::sim
