// systemd's service notification protocol (sd_notify(3)), without libsystemd:
// one datagram of "KEY=VALUE" lines, newline-separated, sent to the AF_UNIX
// socket that systemd names in NOTIFY_SOCKET (a path, or "@name" for the
// abstract namespace). READY=1 once the node serves, WATCHDOG=1 at half the
// interval in WATCHDOG_USEC (a loop that stops turning stops the pings, and
// systemd restarts the service), STATUS=... for `systemctl status`,
// RELOADING=1 / STOPPING=1 around a reload and a stop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace ps::transfer {

class Notifier {
public:
    // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the watchdog is
    // ours when WATCHDOG_PID is unset or is this process), then removes them
    // from the environment so that child processes (the on-complete hook) do
    // not talk to systemd in the node's name. Disabled without NOTIFY_SOCKET.
    static Notifier from_env();
    Notifier() = default;

    bool enabled() const { return !socket_.empty(); }
    // The watchdog interval systemd asked for (WatchdogSec=), 0 = none.
    std::uint64_t watchdog_ms() const { return watchdog_ms_; }
    const std::string& socket() const { return socket_; }
    // Sends one notification ("READY=1\nSTATUS=serving"). Ok and nothing sent
    // when disabled.
    Status send(std::string_view state) const;
    // "RELOADING=1" with the CLOCK_MONOTONIC time systemd wants beside it.
    Status reloading() const;

private:
    std::string socket_;
    std::uint64_t watchdog_ms_ = 0;
};

}  // namespace ps::transfer
