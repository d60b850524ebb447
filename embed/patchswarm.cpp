// libpatchswarm's C API (include/patchswarm/patchswarm.h): the daemon
// (node::Daemon, from the same config file) on a libuv loop run by a thread the
// library owns. Calls from the embedding program's threads are posted to that
// loop and wait for their answer; no exception leaves a C function.
#include "patchswarm/patchswarm.h"

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "node/config.hpp"
#include "node/control.hpp"
#include "node/daemon.hpp"
#include "transfer/loop.hpp"

#ifndef PS_PROJECT_VERSION
#define PS_PROJECT_VERSION "unknown"
#endif

using ps::Hash32;
using ps::Result;

struct ps_node {
    std::string config_path;
    ps::node::DaemonConfig config;
    ps_progress_fn progress_fn = nullptr;
    void* progress_user = nullptr;
    std::uint32_t interval_ms = 500;

    std::thread thread;
    std::thread::id loop_thread;           // set by the node's thread first thing
    std::mutex mu;                         // guards loop
    ps::transfer::Loop* loop = nullptr;    // while the node runs
    bool ran = false;                      // started once (a node is started at most once)
    // Loop thread only:
    std::unique_ptr<ps::node::Daemon> daemon;
    std::unique_ptr<ps::transfer::Timer> ticker, guard;
    std::map<Hash32, std::pair<std::uint64_t, std::string>> reported;  // bytes held, state
    bool stopping = false;
};

namespace {

thread_local std::string last_error;

ps_status fail(ps_status code, std::string why) {
    last_error = std::move(why);
    return code;
}

ps_status ok() {
    last_error.clear();
    return PS_OK;
}

// Runs `body`, turning any exception into PS_ERR_INTERNAL.
template <typename F>
ps_status guarded(F&& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        return fail(PS_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(PS_ERR_INTERNAL, "internal error");
    }
}

ps_patch_state state_of(const std::string& s) {
    if (s == "complete") return PS_PATCH_COMPLETE;
    if (s == "paused") return PS_PATCH_PAUSED;
    if (s == "serving") return PS_PATCH_SERVING;
    if (s == "failed") return PS_PATCH_FAILED;
    return PS_PATCH_DOWNLOADING;
}

// On the loop thread: one callback per patch whose bytes or state changed.
void report(ps_node* n) {
    if (!n->progress_fn || !n->daemon) return;
    for (auto& p : n->daemon->progress()) {
        auto now = std::make_pair(p.held_bytes, p.state);
        auto it = n->reported.find(p.id);
        if (it != n->reported.end() && it->second == now) continue;
        n->reported[p.id] = now;
        const std::string id = ps::to_hex(p.id);
        ps_progress c{id.c_str(), p.name.c_str(), p.version, p.held_bytes, p.total, state_of(p.state), p.out.c_str(),
                      p.error.c_str()};
        n->progress_fn(&c, n->progress_user);
    }
}

// The node's thread: starts the daemon, says how that went, runs the loop.
void run(ps_node* n, std::promise<ps::Status> started) {
    n->loop_thread = std::this_thread::get_id();  // before any callback can ask
    ps::transfer::Loop loop;
    const std::string path = n->config_path;
    auto d = ps::node::Daemon::start(loop, n->config, [path] { return ps::node::load_config(path); });
    if (!d) {
        n->loop_thread = {};
        return started.set_value(std::move(d).take_error());
    }
    n->daemon = std::move(*d);
    n->ticker = std::make_unique<ps::transfer::Timer>(loop);
    n->ticker->start(0, n->interval_ms, [n] { report(n); });
    {
        std::lock_guard lock(n->mu);
        n->loop = &loop;
    }
    started.set_value({});
    loop.run();
    {
        std::lock_guard lock(n->mu);
        n->loop = nullptr;
    }
    report(n);  // the last state, before the node goes
    n->ticker.reset();
    n->guard.reset();
    n->daemon.reset();
    n->loop_thread = {};  // (a later thread may get the same id)
}

// Posts `fn` to the node's loop; false when it does not run.
bool post(ps_node* n, std::function<void()> fn) {
    std::lock_guard lock(n->mu);
    if (!n->loop) return false;
    n->loop->post(std::move(fn));
    return true;
}

ps_status check_caller(ps_node* n) {
    if (!n) return fail(PS_ERR_ARGUMENT, "node is NULL");
    if (std::this_thread::get_id() == n->loop_thread)
        return fail(PS_ERR_STATE, "called from the node's own thread (a progress callback)");
    return PS_OK;
}

ps_status add_result(const Result<Hash32>& r, char* id_out) {
    if (!r) {
        if (r.code() == ps::node::control::kErrAlreadyHere) return fail(PS_ERR_ALREADY, r.error());
        if (r.code() == ps::node::control::kErrRollback) return fail(PS_ERR_ROLLBACK, r.error());
        return fail(PS_ERR_ADD, r.error());
    }
    if (id_out) {
        const std::string hex = ps::to_hex(*r);
        hex.copy(id_out, 64);
        id_out[64] = '\0';
    }
    return ok();
}

// Runs `start(done)` on the loop thread, where it calls done(result) now or
// later; waits up to timeout_ms for it.
ps_status add_on_loop(ps_node* n, std::uint32_t timeout_ms, char* id_out,
                      std::function<void(ps_node*, std::function<void(Result<Hash32>)>)> start) {
    auto promise = std::make_shared<std::promise<Result<Hash32>>>();
    auto answer = promise->get_future();
    bool posted = post(n, [n, promise, start] {
        auto done = [promise](Result<Hash32> r) { promise->set_value(std::move(r)); };
        if (!n->daemon || n->stopping) return done(ps::err("the node is stopping"));
        start(n, done);
    });
    if (!posted) return fail(PS_ERR_STATE, "the node is not running (ps_node_start)");
    if (answer.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready)
        return fail(PS_ERR_TIMEOUT, "no answer from the node in " + std::to_string(timeout_ms / 1000) + " s");
    try {
        return add_result(answer.get(), id_out);
    } catch (const std::future_error&) {  // the loop closed before it ran
        return fail(PS_ERR_STATE, "the node stopped");
    }
}

std::string opt(const char* s) { return s ? s : ""; }

}  // namespace

extern "C" {

const char* ps_version(void) { return PS_PROJECT_VERSION; }

const char* ps_status_name(ps_status s) {
    switch (s) {
        case PS_OK: return "PS_OK";
        case PS_ERR_ARGUMENT: return "PS_ERR_ARGUMENT";
        case PS_ERR_CONFIG: return "PS_ERR_CONFIG";
        case PS_ERR_START: return "PS_ERR_START";
        case PS_ERR_STATE: return "PS_ERR_STATE";
        case PS_ERR_ADD: return "PS_ERR_ADD";
        case PS_ERR_ALREADY: return "PS_ERR_ALREADY";
        case PS_ERR_ROLLBACK: return "PS_ERR_ROLLBACK";
        case PS_ERR_TIMEOUT: return "PS_ERR_TIMEOUT";
        case PS_ERR_INTERNAL: return "PS_ERR_INTERNAL";
    }
    return "PS_ERR_UNKNOWN";
}

const char* ps_last_error(void) { return last_error.c_str(); }

ps_status ps_node_create(const char* config_path, ps_node** out) {
    if (out) *out = nullptr;
    if (!config_path || !*config_path || !out) return fail(PS_ERR_ARGUMENT, "config_path and out are required");
    return guarded([&] {
        auto cfg = ps::node::load_config(config_path);
        if (!cfg) return fail(PS_ERR_CONFIG, cfg.error());
        if (auto st = ps::node::check_settings(*cfg); !st) return fail(PS_ERR_CONFIG, st.error());
        ps::node::set_build_version(std::string("libpatchswarm ") + PS_PROJECT_VERSION);
        auto n = std::make_unique<ps_node>();
        n->config_path = config_path;
        n->config = std::move(*cfg);
        *out = n.release();
        return ok();
    });
}

ps_status ps_node_set_progress(ps_node* n, ps_progress_fn fn, void* user, uint32_t interval_ms) {
    if (!n) return fail(PS_ERR_ARGUMENT, "node is NULL");
    if (n->ran) return fail(PS_ERR_STATE, "set the progress callback before ps_node_start");
    n->progress_fn = fn;
    n->progress_user = user;
    n->interval_ms = interval_ms ? interval_ms : 500;
    return ok();
}

ps_status ps_node_start(ps_node* n) {
    if (!n) return fail(PS_ERR_ARGUMENT, "node is NULL");
    if (n->ran) return fail(PS_ERR_STATE, "a node is started once; create another");
    return guarded([&] {
        std::promise<ps::Status> started;
        auto result = started.get_future();
        n->ran = true;
        n->thread = std::thread(run, n, std::move(started));
        auto st = result.get();
        if (st) return ok();
        n->thread.join();
        return fail(PS_ERR_START, st.error());
    });
}

ps_status ps_node_add_manifest(ps_node* n, const char* manifest_path, const char* out_path, char id_out[65]) {
    if (auto st = check_caller(n); st != PS_OK) return st;
    if (!manifest_path || !*manifest_path) return fail(PS_ERR_ARGUMENT, "manifest_path is required");
    return guarded([&] {
        std::string manifest = manifest_path, out = opt(out_path);
        return add_on_loop(n, 60'000, id_out, [manifest, out](ps_node* node, auto done) {
            done(node->daemon->add_manifest(manifest, out));
        });
    });
}

ps_status ps_node_add_name(ps_node* n, const char* name, const char* out_path, uint32_t timeout_ms, char id_out[65]) {
    if (auto st = check_caller(n); st != PS_OK) return st;
    if (!name || !*name) return fail(PS_ERR_ARGUMENT, "name is required");
    return guarded([&] {
        std::string patch = name, out = opt(out_path);
        return add_on_loop(n, timeout_ms ? timeout_ms : 60'000, id_out, [patch, out](ps_node* node, auto done) {
            node->daemon->add_by_name(patch, out, done);
        });
    });
}

ps_status ps_node_stop(ps_node* n) {
    if (auto st = check_caller(n); st != PS_OK) return st;
    return guarded([&] {
        if (!n->thread.joinable()) return ok();
        // Shutting down ends in a callback posted from the DHT's threads; the
        // guard stops the loop if it never comes (10 s), as `patchswarm node` does.
        post(n, [n] {
            if (n->stopping || !n->daemon) return;
            n->stopping = true;
            n->guard = std::make_unique<ps::transfer::Timer>(*n->loop);
            n->guard->start(10'000, 0, [n] { n->loop->stop(); });
            n->daemon->shutdown([n] { n->loop->stop(); });
        });
        n->thread.join();
        return ok();
    });
}

void ps_node_free(ps_node* n) {
    if (!n) return;
    if (std::this_thread::get_id() == n->loop_thread) return;  // from a callback: not allowed
    (void)ps_node_stop(n);
    delete n;
}

}  // extern "C"
