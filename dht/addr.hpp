// Addresses of the DHT adapter: bind addresses, "host:port" bootstrap entries,
// their resolution, and the fd headroom OpenDHT needs. No OpenDHT type here.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace ps::dht {

struct HostPort {
    std::string host, port;
};

// A socket address and its length.
struct IpAddr {
    sockaddr_storage ss{};
    socklen_t len = 0;
};

// The host of a socket address as a canonical literal ("1.2.3.4", "::1"; an
// IPv4-mapped IPv6 address as its IPv4 form); "" for anything else.
std::string host_string(const sockaddr* sa);

// A numeric IPv4 or IPv6 address with a port; nothing for anything else.
std::optional<IpAddr> parse_ip(const std::string& ip, std::uint16_t port);

// "host:port", "[v6]:port". Hostnames are allowed (resolve() looks them up).
std::optional<HostPort> parse_host_port(const std::string& s);

// The addresses of a bootstrap entry (getaddrinfo: may block on DNS for a
// hostname, so not on the loop thread); empty when it does not resolve.
std::vector<IpAddr> resolve(const HostPort& hp);

// Fails when the lowest free fd plus `headroom` reaches FD_SETSIZE: OpenDHT
// 2.4.12 select()s its fds and aborts the process on one >= FD_SETSIZE.
Status check_fd_headroom(int headroom);

}  // namespace ps::dht
