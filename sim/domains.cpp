#include "sim/domains.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "sim/random.hpp"

namespace ps::sim {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string shown(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    if (s.size() > 40) out += "...";
    return out;
}

}  // namespace

Result<std::vector<std::uint32_t>> parse_domain_sizes(std::string_view text) {
    std::vector<std::uint32_t> sizes;
    std::uint64_t total = 0;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        auto nl = text.find('\n');
        std::string_view raw = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        auto where = "line " + std::to_string(line_no) + ": ";
        if (raw.size() > kMaxDomainLineLength)
            return err(where + "longer than " + std::to_string(kMaxDomainLineLength) + " characters");
        auto line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        std::uint64_t v = 0;
        bool ok = line.size() <= 9;
        for (char c : line) {
            if (c < '0' || c > '9') {
                ok = false;
                break;
            }
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (!ok || v == 0 || v > kMaxDomainSize)
            return err(where + "'" + shown(line) + "' is not a whole number from 1 to " + std::to_string(kMaxDomainSize));
        if (sizes.size() == kMaxDomainLines)
            return err(where + "more than " + std::to_string(kMaxDomainLines) + " domains");
        total += v;
        if (total > kMaxDevices)
            return err(where + "the sizes add up to more than " + std::to_string(kMaxDevices) + " devices");
        sizes.push_back(static_cast<std::uint32_t>(v));
    }
    if (sizes.empty()) return err("no domain sizes (one whole number per line)");
    return sizes;
}

std::vector<std::uint32_t> domain_sizes(const Scenario& s) {
    if (!s.domain_sizes.empty()) return s.domain_sizes;
    const std::uint64_t n = s.devices;
    const std::uint32_t d = s.domains;
    std::vector<std::uint32_t> sizes(d, 1);
    if (s.domain_dist == DomainDist::Equal) {
        for (std::uint32_t i = 0; i < d; ++i) sizes[i] = static_cast<std::uint32_t>(n / d + (i < n % d ? 1 : 0));
        return sizes;
    }
    // Pareto weights (x_min = 1): w = U^(-1/alpha). Each domain gets one device,
    // the rest is shared in proportion to the weights by largest remainder.
    Rng rng = stream(s.seed, Stream::Domains);
    std::vector<double> w(d);
    double sum = 0;
    for (auto& x : w) {
        x = std::pow(1.0 - uniform(rng), -1.0 / s.domain_alpha);
        if (!std::isfinite(x)) x = 1e300;
        sum += x;
    }
    const std::uint64_t rest = n - d;
    std::vector<double> frac(d);
    std::uint64_t given = 0;
    for (std::uint32_t i = 0; i < d; ++i) {
        double share = static_cast<double>(rest) * (w[i] / sum);
        auto whole = static_cast<std::uint64_t>(std::floor(share));
        whole = std::min<std::uint64_t>(whole, rest - given);
        sizes[i] += static_cast<std::uint32_t>(whole);
        given += whole;
        frac[i] = share - static_cast<double>(whole);
    }
    std::vector<std::uint32_t> order(d);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return frac[a] > frac[b]; });
    for (std::uint64_t k = 0; given < rest; ++k, ++given) ++sizes[order[k % d]];
    return sizes;
}

}  // namespace ps::sim
