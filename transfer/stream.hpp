// One libuv stream handle (a TCP socket or a Unix pipe), owned by one object.
// The TCP connections between nodes, the metrics endpoint and the control
// socket all sit on it; they add their protocol, it does the libuv part: the
// handle lives in a heap block freed by its close callback (so the Stream, and
// its owner, may be destroyed at any time, even with writes in flight), reads
// land in the block's buffer, each write owns its bytes until libuv is done
// with them, and no callback reaches the owner once the Stream is gone.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "transfer/loop.hpp"

namespace ps::transfer {

// Parses an IPv4 or IPv6 address (no names: nothing resolves).
Result<sockaddr_storage> ip_address(const std::string& host, std::uint16_t port);
// "1.2.3.4:5" or "[::1]:5".
std::string address_string(const sockaddr_storage& ss);

class Stream {
public:
    enum class Kind { Tcp, Pipe };
    // n > 0: that many bytes at data; n < 0: end of stream (UV_EOF) or a
    // libuv error code. Called only while reading.
    using OnRead = std::function<void(ssize_t n, const char* data)>;
    // One write finished: its size and libuv status (0, or an error; a close
    // cancels what is in flight).
    using OnWritten = std::function<void(std::size_t bytes, int status)>;

    Stream(Loop& loop, Kind kind, std::size_t read_buffer);
    ~Stream();  // closes the handle unless closing already; nothing is called back after this
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    // The libuv status codes (0 or negative) are returned as they are; the
    // callers word their errors with error_name().
    static const char* error_name(int status);
    static constexpr int kEof = -4095;       // UV_EOF
    static constexpr int kCancelled = -125;  // UV_ECANCELED

    int bind(const sockaddr_storage& addr);  // Tcp
    int bind(const std::string& path);       // Pipe
    // Calls on_connection(status) for each connection to accept.
    int listen(int backlog, std::function<void(int status)> on_connection);
    int accept(Stream& client);
    // Tcp: dials addr; done(status) follows unless cancelled by a close.
    int connect(const sockaddr_storage& addr, std::function<void(int status)> done);

    void start_reading(OnRead on_read);
    void stop_reading();
    // Called for every write that finishes.
    void on_written(OnWritten fn) { on_written_ = std::move(fn); }
    int write(Bytes data);
    int write(std::string data);
    // Stops reading and closes the handle; on_closed runs from the close
    // callback, unless the Stream is destroyed first. Later calls do nothing.
    void close(std::function<void()> on_closed = {});
    bool closing() const { return closing_; }

    void set_nodelay();                 // Tcp
    std::string peer_address() const;   // Tcp; "" when unknown
    std::uint16_t local_port() const;   // Tcp
    int fd() const;                     // -1 when none

    struct Block;  // the uv handle and its read buffer (stream.cpp)

private:
    template <typename Buffer>
    int write_buffer(Buffer data);

    Block* block_ = nullptr;
    bool closing_ = false;
    OnRead on_read_;
    OnWritten on_written_;
    std::function<void(int)> on_connect_;
    std::function<void(int)> on_connection_;
    std::function<void()> on_closed_;
};

}  // namespace ps::transfer
