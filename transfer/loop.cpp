#include "transfer/loop.hpp"

#include <new>
#include <stdexcept>

#include <uv.h>

#include <csignal>
#include <cstdio>
#include <deque>
#include <mutex>

#include "transfer/guard.hpp"

namespace ps::transfer {

std::string current_exception_text() {
    try {
        throw;
    } catch (const std::bad_alloc&) {
        return "out of memory";
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown exception";
    }
}

void report_exception(const char* where, const std::string& what) noexcept {
    std::fprintf(stderr, "patchswarm: exception in %s: %s\n", where, what.c_str());
}

// ---- Loop and its cross-thread bridge ----
// post() pushes under the lock and signals the uv_async while still holding it,
// so that the handle cannot be closed between the check and the send. The async
// callback drains the whole queue, since uv_async_send coalesces.
struct Loop::Impl {
    uv_loop_t loop;
    uv_async_t async;
    std::mutex mu;
    std::deque<std::function<void()>> queue;
    bool closed = false;

    static void on_async(uv_async_t* a) {
        auto* self = static_cast<Impl*>(a->data);
        self->drain();
    }
    void drain() {
        std::deque<std::function<void()>> batch;
        {
            std::lock_guard lock(mu);
            batch.swap(queue);
        }
        for (auto& fn : batch) guard_report("posted task", fn);
    }
};

Loop::Loop() : impl_(std::make_unique<Impl>()) {
    // A peer that closes while we write must cost us an EPIPE on that stream,
    // not the process: libuv writes with write(2), which raises SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&impl_->loop);
    uv_async_init(&impl_->loop, &impl_->async, &Impl::on_async);
    impl_->async.data = impl_.get();
    // The bridge must not keep run() alive on its own.
    uv_unref(reinterpret_cast<uv_handle_t*>(&impl_->async));
}

Loop::~Loop() {
    impl_->drain();
    {
        std::lock_guard lock(impl_->mu);
        impl_->closed = true;
        impl_->queue.clear();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&impl_->async), nullptr);
    // Let every pending close callback run, then close whatever a caller leaked.
    uv_run(&impl_->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&impl_->loop) == UV_EBUSY) {
        uv_walk(
            &impl_->loop,
            [](uv_handle_t* h, void*) {
                if (!uv_is_closing(h)) uv_close(h, nullptr);
            },
            nullptr);
        uv_run(&impl_->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&impl_->loop) != 0) std::fprintf(stderr, "patchswarm: event loop closed with live handles\n");
    }
}

void Loop::run() { uv_run(&impl_->loop, UV_RUN_DEFAULT); }
void Loop::stop() { uv_stop(&impl_->loop); }

bool Loop::run_until(const std::function<bool()>& done, std::uint64_t timeout_ms, std::uint64_t poll_ms) {
    Timer t(*this);
    auto start = now_ms();
    t.start(poll_ms, poll_ms, [&] {
        if (done() || now_ms() - start >= timeout_ms) stop();
    });
    run();
    return done();
}

void Loop::post(std::function<void()> fn) {
    std::lock_guard lock(impl_->mu);
    if (impl_->closed) return;
    impl_->queue.push_back(std::move(fn));
    uv_async_send(&impl_->async);
}

std::uint64_t Loop::now_ms() const { return uv_now(&impl_->loop); }
void* Loop::raw() const { return &impl_->loop; }

// ---- Timer ----
// The uv handle lives in a heap block that outlives the Timer until libuv's
// close callback frees it.
struct Timer::Handle {
    uv_timer_t t;
    std::function<void()> fn;
};

Timer::Timer(Loop& loop) : h_(new Handle) {
    uv_timer_init(static_cast<uv_loop_t*>(loop.raw()), &h_->t);
    h_->t.data = h_;
}

Timer::~Timer() {
    uv_timer_stop(&h_->t);
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->t),
             [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

void Timer::start(std::uint64_t timeout_ms, std::uint64_t repeat_ms, std::function<void()> fn) {
    h_->fn = std::move(fn);
    uv_timer_start(
        &h_->t, [](uv_timer_t* t) { guard_report("timer", static_cast<Handle*>(t->data)->fn); }, timeout_ms, repeat_ms);
}

void Timer::stop() { uv_timer_stop(&h_->t); }

// ---- SignalWatch ----
struct SignalWatch::Handle {
    uv_signal_t s;
    std::function<void()> fn;
};

SignalWatch::SignalWatch(Loop& loop, int signum, std::function<void()> fn) : h_(new Handle) {
    uv_signal_init(static_cast<uv_loop_t*>(loop.raw()), &h_->s);
    h_->s.data = h_;
    h_->fn = std::move(fn);
    uv_signal_start(
        &h_->s, [](uv_signal_t* s, int) { guard_report("signal", static_cast<Handle*>(s->data)->fn); }, signum);
    uv_unref(reinterpret_cast<uv_handle_t*>(&h_->s));
}

SignalWatch::~SignalWatch() {
    uv_signal_stop(&h_->s);
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->s),
             [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

}  // namespace ps::transfer
