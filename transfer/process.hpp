// Child processes and blocking work, driven by the loop: the node's installer
// hook (spawned without a shell: argv is passed as it is) and file checks that
// must not stall the loop (run on libuv's thread pool).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "transfer/loop.hpp"

namespace ps::transfer {

class Process {
public:
    // exit_status is the child's exit code; term_signal the signal that killed it (0 if none).
    using OnExit = std::function<void(std::int64_t exit_status, int term_signal)>;

    // Starts argv[0] (an absolute path, or looked up in PATH) with argv, the
    // current environment plus `extra_env` ("KEY=value"), stdin from /dev/null
    // and stdout/stderr shared with this process. on_exit runs on the loop.
    static Result<std::unique_ptr<Process>> spawn(Loop& loop, const std::vector<std::string>& argv,
                                                  const std::vector<std::string>& extra_env, OnExit on_exit);
    // Does not kill the child; on_exit is simply not called any more.
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    int pid() const { return pid_; }
    bool running() const;

    struct Handle;  // the libuv handle block (process.cpp)

private:
    Process() = default;
    Handle* h_ = nullptr;
    int pid_ = 0;
};

// Runs `work` on libuv's thread pool, then `done` on the loop thread. The loop
// waits for running work before it closes; `done` must check that whoever it
// reports to still exists.
void run_blocking(Loop& loop, std::function<void()> work, std::function<void()> done);

}  // namespace ps::transfer
