// The paper's analysis of P2P with locality (Gkantsidis, Karagiannis, Vojnovic,
// "Planet Scale Software Updates", SIGCOMM 2006, Section 5.3.2), for checking
// the simulator against it.
//
// A domain of N hosts; each asks once, at a time drawn from A (density a), and
// stays online for a time drawn from B. A host that finds no other host of its
// domain online must import the patch. Theorem 1:
//     E(D) = N * integral_0^inf (1 - (B~ * a)(s))^(N-1) a(s) ds
// where (B~ * a)(s) = integral_0^s (1 - B(s-u)) a(u) du is the probability that
// a given other host is online at s. Corollary 1: with a non-increasing,
// a* = sup A(t)/t and rho = b a* (b the mean online time), if rho <= 1 then
//     E(D) >= N (1 - rho)^(N-1)          (about N e^(-rho N) for small rho).
#pragma once

#include "sim/scenario.hpp"

namespace ps::sim {

struct TheoryInput {
    Arrival arrival;
    double arrival_mean_s;  // poll: the polling period; poll-exp: its mean; flash: the crowd's mean
    OnlineDist online;
    double online_mean_s;   // b
};

TheoryInput theory_input(const Scenario& s);

// rho = b a*: the mean number of requests per host in one mean online time.
double rho(const TheoryInput& in);
// Theorem 1 with t -> infinity, integrated numerically (adaptive Simpson,
// relative accuracy about 1e-9).
double theorem1_imports(const TheoryInput& in, double n);
// Corollary 1's lower bound N (1 - rho)^(N-1) (0 when rho > 1: no bound).
double corollary1_bound(double rho, double n);
// The paper's estimate N e^(-rho N), largest at N = 1/rho where it is 1/(e rho).
double locality_estimate(double rho, double n);

}  // namespace ps::sim
