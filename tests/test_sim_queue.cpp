// The simulator's event queue: the order the segment level's batched message
// delivery (sim/segment_level.cpp, deliver_run) relies on.
#include <doctest/doctest.h>

#include "sim/engine.hpp"

using namespace ps::sim;

TEST_CASE("sim queue: events run by time, then kind, then id, whatever the push order") {
    EventQueue q;
    q.push(5, 2, 7, 3);  // a run of messages 7..10 at t=5
    q.push(5, 3, 1);     // a deadline at the same time: after every message
    q.push(5, 0, 9);     // a flow done at the same time: before every message
    q.push(4, 3, 2);
    REQUIRE(q.top().t == 4);
    // An event pushed while the run is delivered sorts before its next
    // message exactly when it would have as single events.
    CHECK(EventQueue::make(5, 0, 100) < EventQueue::make(5, 2, 8));
    CHECK_FALSE(EventQueue::make(5, 2, 100) < EventQueue::make(5, 2, 8));
    CHECK_FALSE(EventQueue::make(5, 3, 0) < EventQueue::make(5, 2, 8));
    auto a = q.pop();
    CHECK(a.t == 4);
    auto b = q.pop();
    CHECK((b.kind() == 0 && b.id() == 9));
    auto c = q.pop();
    CHECK((c.kind() == 2 && c.id() == 7 && c.aux() == 3));
    auto d = q.pop();
    CHECK((d.kind() == 3 && d.id() == 1));
    CHECK(q.empty());
}
