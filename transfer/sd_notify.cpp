#include "transfer/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace ps::transfer {

Notifier Notifier::from_env() {
    Notifier n;
    const char* sock = std::getenv("NOTIFY_SOCKET");
    const char* usec = std::getenv("WATCHDOG_USEC");
    const char* pid = std::getenv("WATCHDOG_PID");
    if (sock && (sock[0] == '/' || sock[0] == '@')) n.socket_ = sock;
    if (usec && (!pid || std::strtoll(pid, nullptr, 10) == ::getpid())) {
        char* end = nullptr;
        const unsigned long long v = std::strtoull(usec, &end, 10);
        if (end && *end == '\0' && v > 0) n.watchdog_ms_ = (v + 999) / 1000;
    }
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    return n;
}

Status Notifier::send(std::string_view state) const {
    if (socket_.empty()) return {};
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (socket_.size() >= sizeof a.sun_path) return err("sd_notify: NOTIFY_SOCKET path is too long");
    std::memcpy(a.sun_path, socket_.data(), socket_.size());
    if (socket_[0] == '@') a.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size() + (socket_[0] == '@' ? 0 : 1));
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return err(std::string("sd_notify: socket: ") + std::strerror(errno));
    const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&a), len);
    const int e = errno;
    ::close(fd);
    if (n < 0) return err("sd_notify: send to " + socket_ + ": " + std::strerror(e));
    return {};
}

Status Notifier::reloading() const {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = std::uint64_t(ts.tv_sec) * 1'000'000 + std::uint64_t(ts.tv_nsec) / 1000;
    return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

}  // namespace ps::transfer
