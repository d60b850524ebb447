#include "sim/theory.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ps::sim {

namespace {

// Adaptive Simpson on [a, b].
template <typename F>
double simpson(F& f, double a, double b, double fa, double fm, double fb, double whole, double eps, int depth) {
    double m = (a + b) / 2, lm = (a + m) / 2, rm = (m + b) / 2;
    double flm = f(lm), frm = f(rm);
    double left = (m - a) / 6 * (fa + 4 * flm + fm);
    double right = (b - m) / 6 * (fm + 4 * frm + fb);
    double diff = left + right - whole;
    if (depth <= 0 || std::fabs(diff) <= 15 * eps) return left + right + diff / 15;
    return simpson(f, a, m, fa, flm, fm, left, eps / 2, depth - 1) +
           simpson(f, m, b, fm, frm, fb, right, eps / 2, depth - 1);
}

template <typename F>
double integrate(F f, std::vector<double> knots, double eps) {
    std::sort(knots.begin(), knots.end());
    double total = 0;
    for (std::size_t i = 0; i + 1 < knots.size(); ++i) {
        double a = knots[i], b = knots[i + 1];
        if (!(b > a)) continue;
        // Split each piece in 16 so that a narrow feature cannot hide between samples.
        const int parts = 16;
        for (int k = 0; k < parts; ++k) {
            double x0 = a + (b - a) * k / parts, x1 = a + (b - a) * (k + 1) / parts;
            double f0 = f(x0), f1 = f(x1), fm = f((x0 + x1) / 2);
            double whole = (x1 - x0) / 6 * (f0 + 4 * fm + f1);
            total += simpson(f, x0, x1, f0, fm, f1, whole, eps / parts, 40);
        }
    }
    return total;
}

// (1 - g)^(n-1), computed in logs.
double none_online(double g, double n) {
    if (g <= 0) return 1;
    if (g >= 1) return 0;
    return std::exp((n - 1) * std::log1p(-g));
}

}  // namespace

TheoryInput theory_input(const Scenario& s) {
    return {s.arrival, arrival_mean_seconds(s), s.online_dist, s.online_minutes * 60};
}

double rho(const TheoryInput& in) {
    // Uniform arrivals on [0, T]: A(t)/t = 1/T. Exponential: A(t)/t decreases from lambda.
    return in.online_mean_s / in.arrival_mean_s;
}

double theorem1_imports(const TheoryInput& in, double n) {
    if (n <= 0) return 0;
    const double b = in.online_mean_s;
    const double eps = 1e-12;
    if (in.arrival == Arrival::Poll) {
        const double t = in.arrival_mean_s;
        // P(another host is online at s), s in [0, T].
        auto g = [&](double s) {
            if (b <= 0) return 0.0;
            if (in.online == OnlineDist::Fixed) return std::min(s, b) / t;
            return (b / t) * -std::expm1(-s / b);
        };
        auto f = [&](double s) { return none_online(g(s), n) / t; };
        return n * integrate(f, {0.0, std::min(b, t), t}, eps);
    }
    // Exponential first requests (rate lambda), integrated over x = A(s) in [0, 1).
    const double lambda = 1.0 / in.arrival_mean_s;
    auto g = [&](double s) {
        if (b <= 0) return 0.0;
        if (!std::isfinite(s)) return 0.0;
        if (in.online == OnlineDist::Fixed) return std::exp(-lambda * std::max(0.0, s - b)) - std::exp(-lambda * s);
        double mu = 1.0 / b, d = mu - lambda;
        if (std::fabs(d * s) < 1e-12) return lambda * s * std::exp(-lambda * s);
        return lambda * std::exp(-lambda * s) * -std::expm1(-d * s) / d;
    };
    auto f = [&](double x) {
        double s = x >= 1 ? INFINITY : -std::log1p(-x) / lambda;
        return none_online(g(s), n);
    };
    std::vector<double> knots{0.0, 1.0};
    if (b > 0) knots.push_back(-std::expm1(-lambda * b));
    return n * integrate(f, knots, eps);
}

double corollary1_bound(double r, double n) {
    if (r > 1 || n <= 0) return 0;
    return n * std::pow(1 - r, n - 1);
}

double locality_estimate(double r, double n) { return n * std::exp(-r * n); }

}  // namespace ps::sim
