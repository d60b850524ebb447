#include "transfer/web_server.hpp"

#include <httplib.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace ps::transfer {
struct WebServer::Impl {
    // One request waiting for the loop thread's answer.
    struct Pending {
        std::optional<WebReply> reply;
    };
    Loop& loop;
    Handler handler;
    Limits limits;
    httplib::Server server;
    std::thread thread;
    std::uint16_t port = 0;
    std::atomic<bool> ended{false};  // listen_after_bind returned
    // Shared with requests in flight: the waiting set, and whether the server
    // is closing (then nothing new is handed to the loop).
    struct Hub {
        std::mutex mu;
        std::condition_variable cv;
        std::set<std::shared_ptr<Pending>> waiting;
        bool closing = false;
    };
    std::shared_ptr<Hub> hub = std::make_shared<Hub>();
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // read on the loop thread only

    Impl(Loop& l, Handler h, Limits lim) : loop(l), handler(std::move(h)), limits(lim) {}

    static void fulfil(const std::shared_ptr<Hub>& hub, const std::shared_ptr<Pending>& p, WebReply r) {
        std::lock_guard lock(hub->mu);
        if (!p->reply) p->reply = std::move(r);
        hub->cv.notify_all();
    }

    // On an httplib worker thread.
    WebReply ask_loop(const std::string& path) {
        auto p = std::make_shared<Pending>();
        {
            std::lock_guard lock(hub->mu);
            if (hub->closing) return {503, "text/plain; charset=utf-8", "closing\n"};
            hub->waiting.insert(p);
        }
        loop.post([this, h = hub, p, path, weak = std::weak_ptr<bool>(alive)] {
            if (auto a = weak.lock(); !a || !*a) return fulfil(h, p, {503, "text/plain; charset=utf-8", "closing\n"});
            handler(path, [h, p](WebReply r) { fulfil(h, p, std::move(r)); });
        });
        std::unique_lock lock(hub->mu);
        hub->cv.wait_for(lock, std::chrono::milliseconds(limits.reply_timeout_ms), [&] { return p->reply.has_value(); });
        hub->waiting.erase(p);
        if (!p->reply) return {503, "text/plain; charset=utf-8", "the node did not answer in time\n"};
        return std::move(*p->reply);
    }
};

WebServer::WebServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<WebServer>> WebServer::start(Loop& loop, const std::string& host, std::uint16_t port,
                                                    Handler handler, Limits limits) {
    auto impl = std::make_unique<Impl>(loop, std::move(handler), limits);
    auto& s = impl->server;
    const int threads = limits.threads > 0 ? limits.threads : 1;
    s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    const auto io = std::chrono::milliseconds(limits.io_timeout_ms);
    s.set_read_timeout(io);
    s.set_write_timeout(io);
    s.set_keep_alive_max_count(16);
    s.set_payload_max_length(0);
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a
    // second node bind the same port instead of failing with a clear error.
    s.set_socket_options([](int sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    Impl* self = impl.get();
    s.Get(".*", [self](const httplib::Request& req, httplib::Response& res) {
        WebReply r = self->ask_loop(req.path);
        res.status = r.status;
        res.set_header("Cache-Control", "no-store");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_content(std::move(r.body), r.content_type.c_str());
    });
    auto refuse = [](const httplib::Request&, httplib::Response& res) {
        res.status = 405;
        res.set_content("GET only\n", "text/plain; charset=utf-8");
    };
    s.Post(".*", refuse);
    s.Put(".*", refuse);
    s.Delete(".*", refuse);
    s.Patch(".*", refuse);
    int bound = -1;
    if (port == 0) {
        bound = s.bind_to_any_port(host);
    } else if (s.bind_to_port(host, port)) {
        bound = port;
    }
    if (bound <= 0) return err("cannot listen on " + host + ":" + std::to_string(port) + " (in use, or not an address of this host)");
    impl->port = static_cast<std::uint16_t>(bound);
    impl->thread = std::thread([self] {
        self->server.listen_after_bind();
        self->ended = true;
    });
    // stop() is a no-op until the server runs: wait for it, so that a server
    // destroyed at once still stops.
    for (int i = 0; i < 5000 && !impl->server.is_running() && !impl->ended; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return std::unique_ptr<WebServer>(new WebServer(std::move(impl)));
}

WebServer::~WebServer() {
    *impl_->alive = false;
    {
        std::lock_guard lock(impl_->hub->mu);
        impl_->hub->closing = true;
        for (auto& p : impl_->hub->waiting)
            if (!p->reply) p->reply = WebReply{503, "text/plain; charset=utf-8", "closing\n"};
        impl_->hub->cv.notify_all();
    }
    impl_->server.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t WebServer::port() const { return impl_->port; }

}  // namespace ps::transfer
