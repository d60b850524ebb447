#include "transfer/http_server.hpp"

#include <cstring>
#include <vector>

namespace ps::transfer {

std::variant<HttpRequestLine, HttpError> parse_request_head(std::string_view head) {
    auto eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return HttpError{400, "no request target"};
    auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return HttpError{400, "no HTTP version"};
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (method.empty() || method.size() > 16) return HttpError{400, "bad method"};
    for (char c : method)
        if (c < 'A' || c > 'Z') return HttpError{400, "bad method"};
    if (version != "HTTP/1.0" && version != "HTTP/1.1") return HttpError{400, "unsupported HTTP version"};
    if (target.empty() || target[0] != '/' || target.size() > 2048) return HttpError{400, "bad request target"};
    for (unsigned char c : target)
        if (c <= ' ' || c >= 0x7f) return HttpError{400, "bad request target"};
    if (method != "GET") return HttpError{405, "only GET is served"};
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    return HttpRequestLine{std::string(method), std::string(target)};
}

namespace {

const char* reason_phrase(int status) {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 431: return "Request Header Fields Too Large";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

}  // namespace

// Freed by its stream's close callback; `owner` is cleared when dropped.
struct HttpServer::Client {
    explicit Client(Loop& loop) : stream(loop, Stream::Kind::Tcp, 4096) {}
    Stream stream;
    HttpServer* owner = nullptr;
    std::string head;
    std::uint64_t accepted_ms = 0;
    bool answered = false;
};

namespace {

void close_client(HttpServer::Client* c) {
    c->stream.close([c] { delete c; });
}

}  // namespace

HttpServer::HttpServer(Loop& loop, Handler handler, Limits limits)
    : loop_(loop), handler_(std::move(handler)), limits_(limits), stream_(loop, Stream::Kind::Tcp, 0) {}

Result<std::unique_ptr<HttpServer>> HttpServer::start(Loop& loop, const std::string& host, std::uint16_t port,
                                                      Handler handler, Limits limits) {
    auto addr = ip_address(host, port);
    if (!addr) return err("metrics: " + addr.error());
    std::unique_ptr<HttpServer> s(new HttpServer(loop, std::move(handler), limits));
    HttpServer* self = s.get();
    std::string where = host + ":" + std::to_string(port);
    if (int rc = s->stream_.bind(*addr); rc != 0)
        return err("metrics: cannot bind " + where + ": " + Stream::error_name(rc));
    if (int rc = s->stream_.listen(16, [self](int status) {
            if (status == 0) self->on_connection();
        });
        rc != 0)
        return err("metrics: cannot listen on " + where + ": " + Stream::error_name(rc));
    s->port_ = s->stream_.local_port();
    s->sweeper_ = std::make_unique<Timer>(loop);
    s->sweeper_->start(1'000, 1'000, [self] { self->sweep(); });
    return s;
}

HttpServer::~HttpServer() {
    sweeper_.reset();
    for (Client* c : clients_) {
        c->owner = nullptr;
        close_client(c);
    }
    clients_.clear();
}

void HttpServer::on_connection() {
    auto* c = new Client(loop_);
    c->accepted_ms = loop_.now_ms();
    if (stream_.accept(c->stream) != 0 || clients_.size() >= limits_.max_clients) return close_client(c);
    c->owner = this;
    clients_.insert(c);
    c->stream.start_reading([c](ssize_t n, const char* data) {
        HttpServer* self = c->owner;
        if (!self || c->answered) return;
        if (n < 0) return self->drop(c);
        c->head.append(data, static_cast<std::size_t>(n));
        bool whole = c->head.find("\r\n\r\n") != std::string::npos || c->head.find("\n\n") != std::string::npos;
        if (c->head.size() > self->limits_.max_head)
            return self->respond(c, {431, "text/plain; charset=utf-8", "request head too large\n"});
        if (whole) self->on_head(c);
    });
}

void HttpServer::on_head(Client* c) {
    auto req = parse_request_head(c->head);
    if (auto* e = std::get_if<HttpError>(&req)) return respond(c, {e->status, "text/plain; charset=utf-8", e->reason + "\n"});
    HttpResponse r;
    try {
        r = handler_(std::get<HttpRequestLine>(req).path);
    } catch (...) {  // never unwind through libuv
        r = {503, "text/plain; charset=utf-8", "internal error\n"};
    }
    respond(c, r);
}

void HttpServer::respond(Client* c, const HttpResponse& r) {
    c->answered = true;
    c->stream.stop_reading();
    c->stream.on_written([c](std::size_t, int) {
        if (c->owner) c->owner->drop(c);
    });
    std::string text = "HTTP/1.0 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\nContent-Type: " +
                       r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                       "\r\nConnection: close\r\n\r\n" + r.body;
    if (c->stream.write(std::move(text)) != 0) drop(c);
}

void HttpServer::drop(Client* c) {
    clients_.erase(c);
    c->owner = nullptr;
    close_client(c);
}

void HttpServer::sweep() {
    auto now = loop_.now_ms();
    std::vector<Client*> late;
    for (Client* c : clients_)
        if (now - c->accepted_ms >= limits_.timeout_ms) late.push_back(c);
    for (Client* c : late) drop(c);
}

}  // namespace ps::transfer
