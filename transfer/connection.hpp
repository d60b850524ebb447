// One encrypted, mutually authenticated TCP stream between two nodes.
//
// Handshake (see docs/protocol.md):
//   both:  Hello = "PSWM" | version | fresh ephemeral X25519 key      (plaintext)
//   both:  derive rx/tx with crypto_kx (the dialer is the client) over the
//          ephemerals; transcript = BLAKE2b(tag | dialer hello | acceptor hello)
//   both:  secretstream header (24 B), then the first encrypted frame: Auth =
//          node key, role, domain, Ed25519 signature over (transcript, side,
//          role, domain). A replayed handshake fails: the other side's
//          ephemeral, and so the transcript, is new every time.
// Then frames: u32 big-endian length | secretstream message (<= kMaxWireFrame).
// Nothing but the Hello and the stream header is ever sent in plaintext.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/types.hpp"
#include "crypto/crypto.hpp"
#include "transfer/loop.hpp"
#include "transfer/stream.hpp"

namespace ps::transfer {

// Who this node is: its Ed25519 identity and place in the network.
struct Identity {
    crypto::SecretKey secret;
    crypto::PublicKey key{};
    Role role = Role::Peer;
    std::string domain;
    Bytes cert{};  // encoded node certificate (wire/cert.hpp), sent in Auth; empty: none
};

// What an authenticated peer proved about itself, and the certificate it
// presented (not checked here: the node checks it against its trust store).
struct PeerInfo {
    crypto::PublicKey key{};
    Role role = Role::Peer;
    std::string domain;
    Bytes cert{};
};

class Connection;

// Why a connection closed, for callers that branch on it; the reason string
// next to it is for people (logs) and may change wording freely.
enum class CloseCode : std::uint8_t {
    PeerClosed,         // the peer closed the TCP stream (EOF)
    Shutdown,           // this node is shutting down
    Duplicate,          // another connection to the same node key won
    ConnectFailed,      // the TCP connect did not succeed
    ReadFailed,         // a socket read failed
    WriteFailed,        // a socket write failed
    Goodbye,            // the peer said Bye
    HandshakeTimeout,   // the handshake did not finish in time
    HandshakeFailed,    // the peer failed the handshake (version, key, proof)
    BadAddress,         // the address to dial is not an IP address
    StreamEnded,        // the peer ended the encrypted stream
    ProtocolViolation,  // a frame or message broke the protocol
    IdleTimeout,        // the peer sent nothing useful for the idle timeout
    Overloaded,         // the peer let too many of our bytes queue up (it does not read)
    InternalError,      // handling the connection threw (out of memory, a bug): closed, the node goes on
};
const char* to_string(CloseCode c);
// The ordinary ends of a connection: a node closes or goes away, a dial finds
// nobody. Anything else (a protocol violation, a failed handshake) is worth a
// warning.
bool ordinary(CloseCode c);

class ConnectionHandler {
public:
    virtual ~ConnectionHandler() = default;
    // The handshake completed; peer() is now valid.
    virtual void on_ready(Connection& c) = 0;
    // One decrypted frame. The bytes are valid only during the call.
    virtual void on_message(Connection& c, ByteView frame) = 0;
    // A large write completed, or the queue drained below the low watermark.
    virtual void on_writable(Connection&) {}
    // The last call for this connection; the handler may destroy it here.
    virtual void on_closed(Connection& c, CloseCode code, const std::string& reason) = 0;
};

class Connection {
public:
    // Starts a connection to host:port. When `expect` is set, the peer must
    // prove exactly that node key. `from_host`, when set, is the local address
    // to dial from (a loopback test posing as another machine: 127.0.0.2).
    static std::unique_ptr<Connection> dial(Loop& loop, const std::string& host, std::uint16_t port,
                                            const Identity& self, ConnectionHandler& handler,
                                            std::optional<crypto::PublicKey> expect = std::nullopt,
                                            const std::string& from_host = {});
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Encrypts and queues one frame (plaintext <= wire::kMaxFrame). Ignored
    // unless ready.
    void send(ByteView plaintext);
    // Fault injection for tests: writes bytes as they are, outside the framing
    // and encryption (a misbehaving peer). Never used by the node.
    void write_unframed(Bytes bytes) { write_raw(std::move(bytes)); }
    // Fault injection for tests: stops reading from the socket (a peer that
    // never reads what it is sent).
    void stop_reading() { stream_.stop_reading(); }
    // Write-queue cap: once more than this many bytes wait to go out (the peer
    // does not read), the connection closes as Overloaded. 0 = no cap. Each
    // queued write also counts kWriteOverhead, what it costs in memory beside
    // its bytes, so that a flood of small messages is bounded in memory too.
    void set_max_queued(std::size_t bytes) { max_queued_ = bytes; }
    // Closes with a code and a reason; on_closed follows from the loop.
    void close(CloseCode code, const std::string& reason);

    bool ready() const { return state_ == State::Ready; }
    bool closing() const { return state_ == State::Closing; }
    bool dialer() const { return dialer_; }
    std::uint64_t id() const { return id_; }
    std::uint64_t created_ms() const { return created_ms_; }
    const PeerInfo& peer() const { return peer_; }
    const std::string& remote() const { return remote_; }
    std::size_t queued_bytes() const { return queued_; }
    // Above this many queued bytes the sender should wait for on_writable.
    static constexpr std::size_t kHighWater = 4u << 20;
    static constexpr std::size_t kLowWater = 1u << 20;
    static constexpr std::size_t kWritableChunk = 64u << 10;
    static constexpr std::size_t kMaxQueued = 16u << 20;  // default write-queue cap
    static constexpr std::size_t kWriteOverhead = 256;     // libuv request, buffer header, allocator slack
    // Bytes queued plus kWriteOverhead per queued write: what the cap bounds.
    std::size_t queued_cost() const { return queued_ + queued_writes_ * kWriteOverhead; }
    std::uint64_t bytes_in() const { return bytes_in_; }
    std::uint64_t bytes_out() const { return bytes_out_; }

private:
    friend class Listener;
    enum class State { Connecting, AwaitHello, AwaitHeader, AwaitAuth, Ready, Closing };

    Connection(Loop& loop, const Identity& self, ConnectionHandler& handler, bool dialer);
    void start_handshake();
    void on_bytes(const char* data, std::size_t n);
    void process();
    Status handle_hello(ByteView b);
    Status handle_auth(ByteView plain);
    void write_raw(Bytes buf);
    void on_written(std::size_t n, int status);
    void queue_frame(ByteView plaintext);
    template <class F>
    void guarded(F&& f);

    Loop& loop_;
    const Identity& self_;
    ConnectionHandler& handler_;
    Stream stream_;
    bool dialer_;
    State state_ = State::Connecting;
    std::uint64_t id_;
    std::uint64_t created_ms_;
    std::optional<crypto::PublicKey> expect_;
    std::string remote_;
    CloseCode close_code_ = CloseCode::Shutdown;
    std::string close_reason_;

    crypto::KxKeyPair eph_;
    std::array<std::uint8_t, 40> my_hello_{};
    Hash32 transcript_{};
    std::unique_ptr<crypto::SessionKeys> keys_;
    crypto::StreamPush push_;
    crypto::StreamPull pull_;
    PeerInfo peer_;

    Bytes rbuf_;
    std::size_t rhead_ = 0;
    Bytes plain_;
    std::size_t queued_ = 0;
    std::size_t queued_writes_ = 0;
    std::size_t max_queued_ = kMaxQueued;
    bool above_high_ = false;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

// Accepts connections on host:port and hands each, handshake under way, to on_accept.
class Listener {
public:
    using OnAccept = std::function<void(std::unique_ptr<Connection>)>;
    static Result<std::unique_ptr<Listener>> start(Loop& loop, const std::string& host, std::uint16_t port,
                                                   const Identity& self, ConnectionHandler& handler,
                                                   OnAccept on_accept);
    ~Listener();
    std::uint16_t port() const { return port_; }

private:
    Listener(Loop& loop, const Identity& self, ConnectionHandler& handler, OnAccept on_accept);
    void on_connection();
    Loop& loop_;
    const Identity& self_;
    ConnectionHandler& handler_;
    OnAccept on_accept_;
    Stream stream_;
    std::uint16_t port_ = 0;
};

// Parses "host:port" or "[v6]:port".
Result<std::pair<std::string, std::uint16_t>> parse_endpoint(const std::string& s);

}  // namespace ps::transfer
