// A deliberately tiny HTTP/1.0 server for the metrics endpoint: GET only, one
// request per connection, the reply written whole and the connection closed.
// It is opt-in and meant for a loopback or management address.
//
// Hard limits: a request head (request line + headers) of at most max_head
// bytes (431 beyond), at most max_clients connections at once (more are closed
// on accept), and a connection that has not sent its head within timeout_ms is
// closed. Anything but "GET <path> HTTP/1.x" is answered 400 or 405.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "core/result.hpp"
#include "transfer/loop.hpp"
#include "transfer/stream.hpp"

namespace ps::transfer {

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

struct HttpRequestLine {
    std::string method, path;
};

// Parses the request line of a head ("GET /metrics HTTP/1.1\r\nHost: ...").
// Errors are the status to answer with: 400 (malformed) or 405 (not GET).
struct HttpError {
    int status;
    std::string reason;
};
std::variant<HttpRequestLine, HttpError> parse_request_head(std::string_view head);

class HttpServer {
public:
    using Handler = std::function<HttpResponse(std::string_view path)>;
    struct Limits {
        std::size_t max_head = 8 * 1024;
        std::size_t max_clients = 16;
        std::uint64_t timeout_ms = 5'000;
    };

    static Result<std::unique_ptr<HttpServer>> start(Loop& loop, const std::string& host, std::uint16_t port,
                                                     Handler handler, Limits limits);
    static Result<std::unique_ptr<HttpServer>> start(Loop& loop, const std::string& host, std::uint16_t port,
                                                     Handler handler) {
        return start(loop, host, port, std::move(handler), Limits{});
    }
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    std::uint16_t port() const { return port_; }

    struct Client;  // one connection (http_server.cpp)

private:
    HttpServer(Loop& loop, Handler handler, Limits limits);
    void on_connection();
    void on_head(Client* c);
    void respond(Client* c, const HttpResponse& r);
    void drop(Client* c);
    void sweep();

    Loop& loop_;
    Handler handler_;
    Limits limits_;
    Stream stream_;  // the listening socket
    std::uint16_t port_ = 0;
    std::set<Client*> clients_;
    std::unique_ptr<Timer> sweeper_;
};

}  // namespace ps::transfer
