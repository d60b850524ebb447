// The event loop every node runs on, and the small owners of its handles.
// transfer/ is the only module that includes <uv.h>; everything above it sees
// these project types only.
//
// Threading: all node state lives on the loop thread. Other threads (OpenDHT's)
// hand work in with Loop::post(), which is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace ps::transfer {

class Loop {
public:
    Loop();
    ~Loop();  // closes every handle it still owns and the loop itself
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    // Runs until stop() or until nothing is left to do.
    void run();
    // Runs until done() holds (checked every poll_ms) or timeout_ms passed;
    // returns done(). For tests, benchmarks and one-shot tools.
    bool run_until(const std::function<bool()>& done, std::uint64_t timeout_ms, std::uint64_t poll_ms = 20);
    void stop();
    // Thread-safe: runs `fn` on the loop thread soon. Dropped once the loop closes.
    void post(std::function<void()> fn);
    // The loop's cached monotonic time in milliseconds.
    std::uint64_t now_ms() const;
    void* raw() const;  // uv_loop_t*, for transfer/ internals

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A repeating or one-shot timer; stops and closes its handle when destroyed.
class Timer {
public:
    explicit Timer(Loop& loop);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    void start(std::uint64_t timeout_ms, std::uint64_t repeat_ms, std::function<void()> fn);
    void stop();

private:
    struct Handle;
    Handle* h_;
};

// Calls `fn` on the loop thread when the process receives `signum`.
class SignalWatch {
public:
    SignalWatch(Loop& loop, int signum, std::function<void()> fn);
    ~SignalWatch();
    SignalWatch(const SignalWatch&) = delete;
    SignalWatch& operator=(const SignalWatch&) = delete;

private:
    struct Handle;
    Handle* h_;
};

}  // namespace ps::transfer
