#include "transfer/process.hpp"
#include "transfer/guard.hpp"

#include <uv.h>

#include <cstring>

extern char** environ;

namespace ps::transfer {

struct Process::Handle {
    uv_process_t proc;
    Process::OnExit on_exit;
    bool exited = false;
    bool owned = true;  // the Process object still exists
    bool closing = false;
};

namespace {

void close_process(Process::Handle* h) {
    if (h->closing) return;
    h->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&h->proc), [](uv_handle_t* x) { delete static_cast<Process::Handle*>(x->data); });
}

}  // namespace

Result<std::unique_ptr<Process>> Process::spawn(Loop& loop, const std::vector<std::string>& argv,
                                                const std::vector<std::string>& extra_env, OnExit on_exit) {
    if (argv.empty() || argv[0].empty()) return err("spawn: no program");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> env;
    for (char** e = environ; e && *e; ++e) env.push_back(*e);
    for (auto& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;

    uv_process_options_t opts{};
    opts.file = args[0];
    opts.args = args.data();
    opts.env = env.data();
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.exit_cb = [](uv_process_t* p, int64_t status, int sig) {
        auto* h = static_cast<Handle*>(p->data);
        h->exited = true;
        auto cb = std::move(h->on_exit);
        h->on_exit = nullptr;
        if (cb) guard_report("process exit", [&] { cb(status, sig); });
        // The handle is closed by whoever goes last: the Process, or this callback.
        if (!h->owned) close_process(h);
    };

    std::unique_ptr<Process> p(new Process);
    p->h_ = new Handle;
    p->h_->on_exit = std::move(on_exit);
    p->h_->proc.data = p->h_;
    int rc = uv_spawn(static_cast<uv_loop_t*>(loop.raw()), &p->h_->proc, &opts);
    if (rc != 0) {
        // libuv requires the handle to be closed even when spawning failed.
        p->h_->owned = false;
        p->h_->on_exit = nullptr;
        close_process(p->h_);
        p->h_ = nullptr;
        return err("cannot start " + argv[0] + ": " + uv_strerror(rc));
    }
    p->pid_ = p->h_->proc.pid;
    return p;
}

Process::~Process() {
    if (!h_) return;
    h_->on_exit = nullptr;
    h_->owned = false;
    if (h_->exited) close_process(h_);
    // else: the exit callback closes it (the loop keeps watching the child).
}

bool Process::running() const { return h_ && !h_->exited; }

namespace {

struct Work {
    uv_work_t req;
    std::function<void()> work, done;
};

}  // namespace

void run_blocking(Loop& loop, std::function<void()> work, std::function<void()> done) {
    auto* w = new Work;
    w->work = std::move(work);
    w->done = std::move(done);
    w->req.data = w;
    int rc = uv_queue_work(
        static_cast<uv_loop_t*>(loop.raw()), &w->req,
        [](uv_work_t* r) {
            auto* x = static_cast<Work*>(r->data);
            guard_report("thread-pool work", x->work);  // no exception leaves a pool thread
        },
        [](uv_work_t* r, int) {
            auto* x = static_cast<Work*>(r->data);
            if (x->done) guard_report("thread-pool completion", x->done);
            delete x;
        });
    if (rc != 0) {
        // Cannot queue (never expected): run inline rather than lose the result.
        w->work();
        w->done();
        delete w;
    }
}

}  // namespace ps::transfer
