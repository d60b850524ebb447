#include "dht/addr.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ps::dht {

std::string host_string(const sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (sa && sa->sa_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    } else if (sa && sa->sa_family == AF_INET6) {
        const auto& a6 = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            ::inet_ntop(AF_INET, a6.s6_addr + 12, buf, sizeof buf);
        else
            ::inet_ntop(AF_INET6, &a6, buf, sizeof buf);
    }
    return buf;
}

std::optional<IpAddr> parse_ip(const std::string& ip, std::uint16_t port) {
    IpAddr out;
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.ss);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
    if (inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        out.len = sizeof(sockaddr_in);
        return out;
    }
    if (inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        out.len = sizeof(sockaddr_in6);
        return out;
    }
    return std::nullopt;
}

std::optional<HostPort> parse_host_port(const std::string& s) {
    std::string host, port;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
        in6_addr a6{};
        if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) return std::nullopt;
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string::npos || colon == 0) return std::nullopt;
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host.find(':') != std::string::npos) return std::nullopt;  // bare IPv6 needs brackets
    }
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    const long p = std::stol(port);
    if (p < 1 || p > 65535) return std::nullopt;
    return HostPort{host, port};
}

std::vector<IpAddr> resolve(const HostPort& hp) {
    std::vector<IpAddr> out;
    if (auto a = parse_ip(hp.host, static_cast<std::uint16_t>(std::stoul(hp.port)))) return {*a};
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    if (::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res) != 0) return out;
    for (auto* ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        IpAddr a;
        std::memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        out.push_back(a);
    }
    ::freeaddrinfo(res);
    return out;
}

Status check_fd_headroom(int headroom) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err("dht: cannot open /dev/null to probe fds");
    ::close(fd);
    if (fd + headroom >= FD_SETSIZE)
        return err("dht: lowest free fd is " + std::to_string(fd) +
                   "; OpenDHT 2.4.12 aborts on fds >= FD_SETSIZE (start the DHT earlier)");
    return {};
}

}  // namespace ps::dht
