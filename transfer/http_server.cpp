#include "transfer/http_server.hpp"

#include <uv.h>

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

struct HttpServer::Tcp {
    uv_tcp_t tcp;
    HttpServer* owner;
};

struct HttpServer::Client {
    uv_tcp_t tcp;
    HttpServer* owner;
    std::string head;
    std::uint64_t accepted_ms = 0;
    bool answered = false;
    bool closing = false;
    char rbuf[4096];
};

namespace {

struct WriteReq {
    uv_write_t req;
    std::string data;
    HttpServer::Client* client;
};

void close_client(HttpServer::Client* c) {
    if (c->closing) return;
    c->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
             [](uv_handle_t* h) { delete static_cast<HttpServer::Client*>(h->data); });
}

}  // namespace

HttpServer::HttpServer(Loop& loop, Handler handler, Limits limits)
    : loop_(loop), handler_(std::move(handler)), limits_(limits) {}

Result<std::unique_ptr<HttpServer>> HttpServer::start(Loop& loop, const std::string& host, std::uint16_t port,
                                                      Handler handler, Limits limits) {
    sockaddr_storage ss{};
    if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss)) != 0 &&
        uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss)) != 0)
        return err("metrics: '" + host + "' is not an IPv4 or IPv6 address");
    std::unique_ptr<HttpServer> s(new HttpServer(loop, std::move(handler), limits));
    s->tcp_ = new Tcp;
    s->tcp_->owner = s.get();
    uv_tcp_init(static_cast<uv_loop_t*>(loop.raw()), &s->tcp_->tcp);
    s->tcp_->tcp.data = s->tcp_;
    std::string where = host + ":" + std::to_string(port);
    if (int rc = uv_tcp_bind(&s->tcp_->tcp, reinterpret_cast<const sockaddr*>(&ss), 0); rc != 0)
        return err("metrics: cannot bind " + where + ": " + uv_strerror(rc));
    if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&s->tcp_->tcp), 16,
                           [](uv_stream_t* server, int status) {
                               auto* t = static_cast<Tcp*>(server->data);
                               if (status == 0 && t->owner) t->owner->on_connection();
                           });
        rc != 0)
        return err("metrics: cannot listen on " + where + ": " + uv_strerror(rc));
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(&s->tcp_->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
    s->port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    s->sweeper_ = std::make_unique<Timer>(loop);
    HttpServer* self = s.get();
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
    if (tcp_) {
        tcp_->owner = nullptr;
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_->tcp), [](uv_handle_t* h) { delete static_cast<Tcp*>(h->data); });
    }
}

void HttpServer::on_connection() {
    auto* c = new Client;
    c->owner = this;
    c->accepted_ms = loop_.now_ms();
    uv_tcp_init(static_cast<uv_loop_t*>(loop_.raw()), &c->tcp);
    c->tcp.data = c;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&tcp_->tcp), reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0 ||
        clients_.size() >= limits_.max_clients) {
        c->owner = nullptr;
        return close_client(c);
    }
    clients_.insert(c);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
            auto* cl = static_cast<Client*>(h->data);
            *buf = uv_buf_init(cl->rbuf, sizeof cl->rbuf);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
            auto* cl = static_cast<Client*>(s->data);
            HttpServer* self = cl->owner;
            if (!self || n == 0 || cl->answered) return;
            if (n < 0) return self->drop(cl);
            cl->head.append(cl->rbuf, static_cast<std::size_t>(n));
            bool whole = cl->head.find("\r\n\r\n") != std::string::npos || cl->head.find("\n\n") != std::string::npos;
            if (cl->head.size() > self->limits_.max_head)
                return self->respond(cl, {431, "text/plain; charset=utf-8", "request head too large\n"});
            if (whole) self->on_head(cl);
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
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
    auto* w = new WriteReq;
    w->client = c;
    w->data = "HTTP/1.0 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\nContent-Type: " +
              r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
              "\r\nConnection: close\r\n\r\n" + r.body;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, [](uv_write_t* req, int) {
        auto* wr = static_cast<WriteReq*>(req->data);
        Client* cl = wr->client;
        delete wr;
        if (cl->owner) cl->owner->drop(cl);
    });
    if (rc != 0) {
        delete w;
        drop(c);
    }
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
