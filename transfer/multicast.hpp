// An IPv4 UDP multicast socket on the loop: joins a group on a port, hands each
// datagram (with its source address) to a callback, and sends to the group.
// For LAN discovery (node/node_lan.cpp). Datagrams larger than kMaxDatagram are
// dropped unread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "transfer/loop.hpp"

namespace ps::transfer {

class MulticastSocket {
public:
    static constexpr std::size_t kMaxDatagram = 512;
    // data, the sender's IPv4 address as text
    using OnDatagram = std::function<void(ByteView data, const std::string& from)>;

    // Binds 0.0.0.0:port (shared with other processes: SO_REUSEADDR), joins
    // `group` on the interface the kernel routes it to, TTL 1, loopback of our
    // own datagrams on (nodes of one host find each other). Errors name the
    // step that failed (bind, join).
    static Result<std::unique_ptr<MulticastSocket>> open(Loop& loop, const std::string& group, std::uint16_t port,
                                                         OnDatagram on_datagram);
    ~MulticastSocket();  // closes the handle (freed in its close callback)
    MulticastSocket(const MulticastSocket&) = delete;
    MulticastSocket& operator=(const MulticastSocket&) = delete;

    // Sends one datagram to the group (best effort; false when it could not be queued).
    bool send(ByteView data);

private:
    struct Handle;
    MulticastSocket() = default;
    Handle* h_ = nullptr;
};

}  // namespace ps::transfer
