#include "transfer/stream.hpp"

#include <uv.h>

#include <cstring>
#include <memory>

#include "transfer/guard.hpp"

namespace ps::transfer {

static_assert(Stream::kEof == UV_EOF && Stream::kCancelled == UV_ECANCELED);

Result<sockaddr_storage> ip_address(const std::string& host, std::uint16_t port) {
    sockaddr_storage ss{};
    if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss)) == 0) return ss;
    if (uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) return ss;
    return err("'" + host + "' is not an IPv4 or IPv6 address");
}

std::string address_string(const sockaddr_storage& ss) {
    char ip[64] = "?";
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        uv_ip4_name(a, ip, sizeof ip);
        return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
    }
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {  // an IPv4 peer of a dual-stack ("::") socket: say it as IPv4
        sockaddr_in v4{};
        v4.sin_family = AF_INET;
        v4.sin_port = a->sin6_port;
        std::memcpy(&v4.sin_addr, a->sin6_addr.s6_addr + 12, 4);
        uv_ip4_name(&v4, ip, sizeof ip);
        return std::string(ip) + ":" + std::to_string(ntohs(a->sin6_port));
    }
    uv_ip6_name(a, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
}

// The handle and its owner. The block outlives the Stream until the close
// callback; `owner` is cleared when the Stream goes first.
struct Stream::Block {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    };
    uv_connect_t connect;
    Stream* owner;
    std::size_t rsize;
    std::unique_ptr<char[]> rbuf;
};

namespace {

template <typename Buffer>
struct WriteReq {
    uv_write_t req;
    Buffer buf;
    Stream::Block* block;
};

}  // namespace

Stream::Stream(Loop& loop, Kind kind, std::size_t read_buffer) {
    block_ = new Block;
    block_->owner = this;
    block_->rsize = read_buffer;
    block_->rbuf.reset(new char[read_buffer]);
    auto* l = static_cast<uv_loop_t*>(loop.raw());
    if (kind == Kind::Tcp) uv_tcp_init(l, &block_->tcp);
    else uv_pipe_init(l, &block_->pipe, 0);
    block_->handle.data = block_;
}

Stream::~Stream() {
    if (!block_) return;
    block_->owner = nullptr;
    if (!uv_is_closing(&block_->handle))
        uv_close(&block_->handle, [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
}

const char* Stream::error_name(int status) { return uv_strerror(status); }

int Stream::bind(const sockaddr_storage& addr) {
    // Without UV_TCP_IPV6ONLY libuv clears IPV6_V6ONLY on an IPv6 socket,
    // whatever net.ipv6.bindv6only says: "::" takes IPv4 and IPv6 at once.
    return uv_tcp_bind(&block_->tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
}

int Stream::bind(const std::string& path) { return uv_pipe_bind(&block_->pipe, path.c_str()); }

int Stream::listen(int backlog, std::function<void(int status)> on_connection) {
    on_connection_ = std::move(on_connection);
    return uv_listen(&block_->stream, backlog, [](uv_stream_t* s, int status) {
        auto* b = static_cast<Block*>(s->data);
        if (b->owner) guard_report("accept", [&] { b->owner->on_connection_(status); });
    });
}

int Stream::accept(Stream& client) { return uv_accept(&block_->stream, &client.block_->stream); }

int Stream::connect(const sockaddr_storage& addr, std::function<void(int status)> done) {
    on_connect_ = std::move(done);
    block_->connect.data = block_;
    return uv_tcp_connect(&block_->connect, &block_->tcp, reinterpret_cast<const sockaddr*>(&addr),
                          [](uv_connect_t* req, int status) {
                              auto* b = static_cast<Block*>(req->data);
                              if (!b->owner || status == UV_ECANCELED) return;
                              guard_report("connect", [&] { b->owner->on_connect_(status); });
                          });
}

void Stream::start_reading(OnRead on_read) {
    on_read_ = std::move(on_read);
    uv_read_start(
        &block_->stream,
        [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
            auto* b = static_cast<Block*>(h->data);
            *buf = uv_buf_init(b->rbuf.get(), static_cast<unsigned>(b->rsize));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
            auto* b = static_cast<Block*>(s->data);
            if (!b->owner || n == 0) return;
            guard_report("read", [&] { b->owner->on_read_(n, b->rbuf.get()); });
        });
}

void Stream::stop_reading() {
    if (block_) uv_read_stop(&block_->stream);
}

template <typename Buffer>
int Stream::write_buffer(Buffer data) {
    auto* w = new WriteReq<Buffer>{{}, std::move(data), block_};
    w->req.data = w;
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(w->buf.data()), static_cast<unsigned>(w->buf.size()));
    int rc = uv_write(&w->req, &block_->stream, &b, 1, [](uv_write_t* req, int status) {
        auto* wr = static_cast<WriteReq<Buffer>*>(req->data);
        Stream* s = wr->block->owner;
        std::size_t n = wr->buf.size();
        delete wr;
        if (s && s->on_written_) guard_report("write", [&] { s->on_written_(n, status); });
    });
    if (rc != 0) delete w;
    return rc;
}

int Stream::write(Bytes data) { return block_ ? write_buffer(std::move(data)) : UV_EBADF; }
int Stream::write(std::string data) { return block_ ? write_buffer(std::move(data)) : UV_EBADF; }

void Stream::close(std::function<void()> on_closed) {
    if (closing_ || !block_) return;
    closing_ = true;
    on_closed_ = std::move(on_closed);
    uv_read_stop(&block_->stream);
    uv_close(&block_->handle, [](uv_handle_t* h) {
        auto* b = static_cast<Block*>(h->data);
        Stream* s = b->owner;
        delete b;
        if (!s) return;
        s->block_ = nullptr;
        auto done = std::move(s->on_closed_);
        if (done) guard_report("close", done);  // may destroy s
    });
}

void Stream::set_nodelay() { uv_tcp_nodelay(&block_->tcp, 1); }

std::string Stream::peer_address() const {
    sockaddr_storage peer{};
    int len = sizeof peer;
    if (uv_tcp_getpeername(&block_->tcp, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return {};
    return address_string(peer);
}

std::uint16_t Stream::local_port() const {
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(&block_->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
    return ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

int Stream::fd() const {
    uv_os_fd_t fd = -1;
    if (!block_ || uv_fileno(&block_->handle, &fd) != 0) return -1;
    return fd;
}

}  // namespace ps::transfer
