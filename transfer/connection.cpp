#include "transfer/connection.hpp"

#include <cstring>

#include "transfer/guard.hpp"
#include "wire/messages.hpp"

namespace ps::transfer {

namespace {

std::uint64_t g_next_id = 1;  // loop-thread only
constexpr std::string_view kTranscriptTag = "patchswarm/handshake/v1";
constexpr std::size_t kReadChunk = 256 * 1024;

}  // namespace

const char* to_string(CloseCode c) {
    switch (c) {
        case CloseCode::PeerClosed: return "peer_closed";
        case CloseCode::Shutdown: return "shutdown";
        case CloseCode::Duplicate: return "duplicate";
        case CloseCode::ConnectFailed: return "connect_failed";
        case CloseCode::ReadFailed: return "read_failed";
        case CloseCode::WriteFailed: return "write_failed";
        case CloseCode::Goodbye: return "goodbye";
        case CloseCode::HandshakeTimeout: return "handshake_timeout";
        case CloseCode::HandshakeFailed: return "handshake_failed";
        case CloseCode::BadAddress: return "bad_address";
        case CloseCode::StreamEnded: return "stream_ended";
        case CloseCode::ProtocolViolation: return "protocol_violation";
        case CloseCode::IdleTimeout: return "idle_timeout";
        case CloseCode::Overloaded: return "overloaded";
        case CloseCode::InternalError: return "internal_error";
    }
    return "?";
}

bool ordinary(CloseCode c) {
    switch (c) {
        case CloseCode::PeerClosed:
        case CloseCode::Shutdown:
        case CloseCode::Duplicate:
        case CloseCode::ConnectFailed:
        case CloseCode::ReadFailed:
        case CloseCode::WriteFailed:
        case CloseCode::Goodbye:
        case CloseCode::IdleTimeout: return true;
        default: return false;
    }
}

// What the connection and its handler do from a libuv callback: an exception
// closes this connection, with its text, and nothing else.
template <class F>
void Connection::guarded(F&& f) {
    guard(std::forward<F>(f), [this](const std::string& what) { close(CloseCode::InternalError, "internal error: " + what); });
}

Connection::Connection(Loop& loop, const Identity& self, ConnectionHandler& handler, bool dialer)
    : loop_(loop), self_(self), handler_(handler), stream_(loop, Stream::Kind::Tcp, kReadChunk), dialer_(dialer),
      id_(g_next_id++), created_ms_(loop.now_ms()), eph_(crypto::kx_keypair()) {
    stream_.on_written([this](std::size_t n, int status) { guarded([&] { on_written(n, status); }); });
}

Connection::~Connection() = default;

std::unique_ptr<Connection> Connection::dial(Loop& loop, const std::string& host, std::uint16_t port,
                                             const Identity& self, ConnectionHandler& handler,
                                             std::optional<crypto::PublicKey> expect, const std::string& from_host) {
    std::unique_ptr<Connection> c(new Connection(loop, self, handler, true));
    c->expect_ = expect;
    c->remote_ = host + ":" + std::to_string(port);
    auto addr = ip_address(host, port);
    if (!addr) {
        c->close(CloseCode::BadAddress, addr.error());
        return c;
    }
    if (!from_host.empty()) {
        auto from = ip_address(from_host, 0);
        int brc = from ? c->stream_.bind(*from) : -1;
        if (brc != 0) {
            c->close(CloseCode::BadAddress, "cannot dial from " + from_host);
            return c;
        }
    }
    c->stream_.set_nodelay();
    Connection* conn = c.get();
    int rc = c->stream_.connect(*addr, [conn](int status) {
        if (status != 0) return conn->close(CloseCode::ConnectFailed, std::string("connect failed: ") + Stream::error_name(status));
        conn->guarded([conn] { conn->start_handshake(); });
    });
    if (rc != 0) c->close(CloseCode::ConnectFailed, std::string("connect failed: ") + Stream::error_name(rc));
    return c;
}

void Connection::start_handshake() {
    state_ = State::AwaitHello;
    stream_.start_reading([this](ssize_t n, const char* data) {
        if (n == Stream::kEof) return close(CloseCode::PeerClosed, "peer closed the connection");
        if (n < 0) return close(CloseCode::ReadFailed, std::string("read failed: ") + Stream::error_name(static_cast<int>(n)));
        guarded([&] { on_bytes(data, static_cast<std::size_t>(n)); });
    });
    wire::Hello h;
    h.ephemeral = eph_.pk;
    auto hello = wire::encode_hello(h);
    std::memcpy(my_hello_.data(), hello.data(), hello.size());
    write_raw(Bytes(hello.begin(), hello.end()));
}

void Connection::on_bytes(const char* data, std::size_t n) {
    bytes_in_ += n;
    rbuf_.insert(rbuf_.end(), data, data + n);
    process();
    // Compact once the consumed prefix dominates, so the buffer stays bounded.
    if (rhead_ > 0 && (rhead_ == rbuf_.size() || rhead_ > rbuf_.size() / 2)) {
        rbuf_.erase(rbuf_.begin(), rbuf_.begin() + static_cast<std::ptrdiff_t>(rhead_));
        rhead_ = 0;
    }
}

void Connection::process() {
    while (state_ != State::Closing) {
        std::size_t avail = rbuf_.size() - rhead_;
        const std::uint8_t* p = rbuf_.data() + rhead_;
        if (state_ == State::AwaitHello) {
            if (avail < wire::kHelloSize) return;
            rhead_ += wire::kHelloSize;
            if (auto s = handle_hello({p, wire::kHelloSize}); !s) return close(CloseCode::HandshakeFailed, s.error());
            continue;
        }
        if (state_ == State::AwaitHeader) {
            if (avail < crypto::kStreamHeaderSize) return;
            rhead_ += crypto::kStreamHeaderSize;
            if (auto s = pull_.init(keys_->rx, {p, crypto::kStreamHeaderSize}); !s)
                return close(CloseCode::HandshakeFailed, "handshake: " + s.error());
            state_ = State::AwaitAuth;
            continue;
        }
        // AwaitAuth or Ready: length-prefixed encrypted frames.
        if (avail < 4) return;
        std::uint32_t len = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
        if (len > wire::kMaxWireFrame || len < crypto::kStreamOverhead)
            return close(CloseCode::ProtocolViolation, "frame of " + std::to_string(len) + " bytes is outside the limits");
        if (avail < 4 + std::size_t{len}) return;
        rhead_ += 4 + std::size_t{len};
        plain_.resize(len - crypto::kStreamOverhead);
        bool final = false;
        if (auto s = pull_.pull({p + 4, len}, plain_.data(), &final); !s) return close(CloseCode::ProtocolViolation, s.error());
        if (final) return close(CloseCode::StreamEnded, "peer ended the stream");
        if (state_ == State::AwaitAuth) {
            if (auto s = handle_auth(plain_); !s) return close(CloseCode::HandshakeFailed, s.error());
            state_ = State::Ready;
            handler_.on_ready(*this);
            continue;
        }
        handler_.on_message(*this, plain_);
    }
}

Status Connection::handle_hello(ByteView b) {
    auto h = wire::decode_hello(b);
    if (!h) return std::move(h).take_error();
    if (h->version != wire::kProtocolVersion)
        return err("handshake: peer speaks protocol version " + std::to_string(h->version) + ", this node speaks " +
                   std::to_string(wire::kProtocolVersion));
    auto keys = dialer_ ? crypto::kx_client(eph_, h->ephemeral) : crypto::kx_server(eph_, h->ephemeral);
    if (!keys) return err("handshake: " + keys.error());
    keys_ = std::make_unique<crypto::SessionKeys>(*keys);
    ByteView dialer_hello = dialer_ ? ByteView(my_hello_) : b;
    ByteView acceptor_hello = dialer_ ? b : ByteView(my_hello_);
    transcript_ = crypto::blake2b({as_bytes(kTranscriptTag), dialer_hello, acceptor_hello});

    auto header = push_.init(keys_->tx);
    write_raw(Bytes(header.begin(), header.end()));
    wire::Auth a;
    a.node_key = self_.key;
    a.role = self_.role;
    a.domain = self_.domain;
    a.cert = self_.cert;
    a.sig = crypto::sign(self_.secret, wire::auth_payload(transcript_, dialer_, self_.role, self_.domain));
    queue_frame(wire::encode_auth(a));
    state_ = State::AwaitHeader;
    return {};
}

Status Connection::handle_auth(ByteView plain) {
    auto a = wire::decode_auth(plain);
    if (!a) return err("handshake: " + a.error());
    if (!crypto::verify(a->node_key, wire::auth_payload(transcript_, !dialer_, a->role, a->domain), a->sig))
        return err("handshake: peer failed to prove its node key");
    if (a->node_key == self_.key) return err("handshake: connected to itself");
    if (expect_ && *expect_ != a->node_key) return err("handshake: peer is not the node its record names");
    peer_ = PeerInfo{a->node_key, a->role, a->domain, std::move(a->cert)};
    return {};
}

void Connection::queue_frame(ByteView plaintext) {
    std::size_t clen = plaintext.size() + crypto::kStreamOverhead;
    Bytes buf(4 + clen);
    buf[0] = static_cast<std::uint8_t>(clen >> 24);
    buf[1] = static_cast<std::uint8_t>(clen >> 16);
    buf[2] = static_cast<std::uint8_t>(clen >> 8);
    buf[3] = static_cast<std::uint8_t>(clen);
    push_.push(plaintext, buf.data() + 4);
    write_raw(std::move(buf));
}

void Connection::send(ByteView plaintext) {
    if (state_ != State::Ready || plaintext.size() > wire::kMaxFrame) return;
    queue_frame(plaintext);
}

void Connection::write_raw(Bytes data) {
    if (state_ == State::Closing) return;
    std::size_t n = data.size();
    if (max_queued_ > 0 && queued_cost() + n + kWriteOverhead > max_queued_)
        return close(CloseCode::Overloaded, "peer does not read: " + std::to_string(queued_writes_ + 1) + " writes, " +
                                                std::to_string(queued_ + n) + " bytes would be queued, over the write-queue cap");
    queued_ += n;
    ++queued_writes_;
    bytes_out_ += n;
    if (int rc = stream_.write(std::move(data)); rc != 0) {
        queued_ -= n;
        --queued_writes_;
        close(CloseCode::WriteFailed, std::string("write failed: ") + Stream::error_name(rc));
        return;
    }
    if (queued_ >= kHighWater) above_high_ = true;
}

void Connection::on_written(std::size_t n, int status) {
    queued_ -= n;
    --queued_writes_;
    if (status < 0 && status != Stream::kCancelled)
        return close(CloseCode::WriteFailed, std::string("write failed: ") + Stream::error_name(status));
    // Every large write that completes frees budget the owner may share
    // across connections; small ones (control messages) do not bother it.
    if (state_ == State::Ready && (n >= kWritableChunk || (above_high_ && queued_ < kLowWater))) {
        above_high_ = false;
        handler_.on_writable(*this);
    }
}

void Connection::close(CloseCode code, const std::string& reason) {
    if (state_ == State::Closing) return;
    state_ = State::Closing;
    close_code_ = code;
    close_reason_ = reason;
    stream_.close([this] { handler_.on_closed(*this, close_code_, close_reason_); });  // may destroy this
}

// ---- Listener ----

Listener::Listener(Loop& loop, const Identity& self, ConnectionHandler& handler, OnAccept on_accept)
    : loop_(loop), self_(self), handler_(handler), on_accept_(std::move(on_accept)), stream_(loop, Stream::Kind::Tcp, 0) {}

Result<std::unique_ptr<Listener>> Listener::start(Loop& loop, const std::string& host, std::uint16_t port,
                                                  const Identity& self, ConnectionHandler& handler,
                                                  OnAccept on_accept) {
    auto addr = ip_address(host, port);
    if (!addr) return err("listen: " + addr.error());
    std::unique_ptr<Listener> l(new Listener(loop, self, handler, std::move(on_accept)));
    Listener* lis = l.get();
    int rc = l->stream_.bind(*addr);
    if (rc == 0)
        rc = l->stream_.listen(128, [lis](int status) {
            if (status == 0) lis->on_connection();
        });
    if (rc != 0) return err("listen on " + host + ":" + std::to_string(port) + ": " + Stream::error_name(rc));
    l->port_ = l->stream_.local_port();
    return l;
}

void Listener::on_connection() {
    std::unique_ptr<Connection> c(new Connection(loop_, self_, handler_, false));
    if (stream_.accept(c->stream_) != 0) return;
    c->stream_.set_nodelay();
    c->remote_ = c->stream_.peer_address();
    c->start_handshake();
    on_accept_(std::move(c));
}

Listener::~Listener() = default;

Result<std::pair<std::string, std::uint16_t>> parse_endpoint(const std::string& s) {
    std::string host, port;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
            return err("'" + s + "' is not [ipv6]:port");
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string::npos) return err("'" + s + "' has no :port");
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
        return err("'" + s + "' has no valid port");
    unsigned long p = std::stoul(port);
    if (p > 65535) return err("'" + s + "': port out of range");
    if (host.empty()) return err("'" + s + "' has no host");
    return std::make_pair(host, static_cast<std::uint16_t>(p));
}

}  // namespace ps::transfer
