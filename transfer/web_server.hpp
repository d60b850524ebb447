// The dashboard's web server (docs/daemon.md#dashboard): cpp-httplib (Debian's
// libcpp-httplib) on its own threads, every request handed to the libuv loop
// with Loop::post, so that whoever answers only ever runs on the loop thread.
// The request's thread waits for that answer (at most reply_timeout_ms, then
// 503). This file's .cpp is the only one that includes <httplib.h>.
//
// Hard limits: GET and HEAD only (405 otherwise), a request of at most 8 KiB
// of head and no body, `threads` worker threads, a socket idle for
// io_timeout_ms closed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "transfer/loop.hpp"

namespace ps::transfer {

struct WebReply {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

class WebServer {
public:
    // Runs on the loop thread; calls respond once (at once or later, on the loop thread).
    using Handler = std::function<void(const std::string& path, std::function<void(WebReply)> respond)>;
    struct Limits {
        int threads = 2;
        std::uint64_t reply_timeout_ms = 5'000;
        std::uint64_t io_timeout_ms = 5'000;
    };

    // Binds host:port (port 0 = any free port) and starts serving.
    static Result<std::unique_ptr<WebServer>> start(Loop& loop, const std::string& host, std::uint16_t port,
                                                    Handler handler, Limits limits);
    static Result<std::unique_ptr<WebServer>> start(Loop& loop, const std::string& host, std::uint16_t port,
                                                    Handler handler) {
        return start(loop, host, port, std::move(handler), Limits{});
    }
    // Answers what still waits with 503, stops the server and joins its threads.
    ~WebServer();
    WebServer(const WebServer&) = delete;
    WebServer& operator=(const WebServer&) = delete;

    std::uint16_t port() const;

private:
    struct Impl;
    explicit WebServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace ps::transfer
