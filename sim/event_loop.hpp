// The run loop both simulator levels share (sim/download_level.cpp,
// sim/segment_level.cpp): the devices' arrivals merged with the event queue,
// each event handed to the level by kind, until a stop condition holds.
#pragma once

#include <cstdint>
#include <vector>

#include "sim/engine.hpp"

namespace ps::sim {

// The arrivals: `order` lists the devices by arrival time, `arrival(d)` is
// device d's. An arrival runs before the next queued event only when it is
// strictly earlier, so a run does not depend on the order things were
// scheduled in.
//
// Each step sets `now`, counts one in `events`, and calls `arrive(d)` or
// `on_event(kind, id, aux)`. The loop runs while an arrival or an event is
// left and `go_on(arrivals_left)` holds (checked before each step).
template <typename Arrival, typename Arrive, typename OnEvent, typename GoOn>
void run_events(EventQueue& q, const std::vector<std::uint32_t>& order, Arrival arrival, Time& now,
                std::uint64_t& events, Arrive arrive, OnEvent on_event, GoOn go_on) {
    const std::size_t n = order.size();
    std::size_t ai = 0;
    while ((ai < n || !q.empty()) && go_on(ai < n)) {
        if (ai < n && (q.empty() || arrival(order[ai]) < q.next_time())) {
            std::uint32_t d = order[ai++];
            now = arrival(d);
            ++events;
            arrive(d);
            continue;
        }
        auto e = q.pop();
        now = e.t;
        ++events;
        on_event(e.kind(), e.id(), e.aux());
    }
}

// Without a stop condition: until every arrival and event has run.
template <typename Arrival, typename Arrive, typename OnEvent>
void run_events(EventQueue& q, const std::vector<std::uint32_t>& order, Arrival arrival, Time& now,
                std::uint64_t& events, Arrive arrive, OnEvent on_event) {
    run_events(q, order, arrival, now, events, arrive, on_event, [](bool) { return true; });
}

}  // namespace ps::sim
