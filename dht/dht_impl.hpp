// The adapter's internals shared by its translation units (dht.cpp, dht_join.cpp):
// the state OpenDHT's callbacks and the loop both reach, and Node::Impl. Only
// dht/ includes it; OpenDHT's headers stay inside this module.
#pragma once

#include <opendht/dhtrunner.h>
#include <opendht/value.h>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "crypto/crypto.hpp"
#include "dht/addr.hpp"
#include "dht/datagram.hpp"
#include "dht/dht.hpp"
#include "dht/filtered_socket.hpp"
#include "dht/newest_manifests.hpp"

namespace ps::dht {

namespace od = ::dht;

inline od::SockAddr to_sockaddr(const IpAddr& a) {
    return od::SockAddr(reinterpret_cast<const sockaddr*>(&a.ss), a.len);
}

// Shared between the Node, OpenDHT callbacks and posted closures. Stats and the
// pending-op table are touched on the loop thread only; the atomics on any thread.
struct Shared {
    Post post;
    std::atomic<bool> closed{false};  // set on the loop thread; no user callback runs after
    std::atomic<std::uint64_t> stores_refused{0};
    std::atomic<std::uint64_t> stores_older_refused{0};
    std::atomic<std::uint64_t> stores_unenrolled{0};
    std::atomic<std::uint64_t> callbacks_failed{0};
    std::shared_ptr<DatagramDrops> drops = std::make_shared<DatagramDrops>();
    std::shared_ptr<DatagramTraffic> traffic = std::make_shared<DatagramTraffic>();
    NewestManifests newest_manifests;
    Stats stats;
    std::uint64_t next_op = 1;
    std::map<std::uint64_t, std::function<void()>> pending;  // op id -> abort (completes the op)

    // From any thread: run fn on the loop thread unless the node has closed by then.
    static void deliver(const std::shared_ptr<Shared>& self, std::function<void()> fn) {
        if (self->closed) return;
        self->post([self, fn = std::move(fn)] {
            if (self->closed) return;
            // The adapter's boundary with the event loop: nothing thrown by a
            // completion (bad_alloc, say) unwinds into the loop's callback.
            try {
                fn();
            } catch (...) {
                self->callbacks_failed++;
            }
        });
    }
};

struct Node::Impl {
    struct Slot {
        std::uint64_t generation = 0;
        od::Value::Id dht_id = 0;
        std::shared_ptr<od::Value> value;
    };
    struct Listen {
        od::InfoHash key;
        std::shared_future<std::size_t> token;
        std::shared_ptr<std::atomic<bool>> cancelled;
    };

    Config cfg;
    std::shared_ptr<Shared> shared = std::make_shared<Shared>();
    std::unique_ptr<od::DhtRunner> runner;
    bool joined = false;
    bool stopping = false;
    std::uint16_t port4 = 0, port6 = 0;
    std::string id_hex;
    std::array<std::uint8_t, 16> salt{};
    std::map<std::pair<Key, std::uint64_t>, Slot> slots;
    std::map<ListenToken, Listen> listens;
    ListenToken next_listen = 1;
    // ping_bootstrap(): resolves and pings off the loop thread; joined before the runner.
    std::thread pinger;
    std::atomic<bool> pinging{false};

    // OpenDHT value ids are derived, not the caller's: a fresh salt per run means a
    // restarted node never collides with its own not-yet-expired copies (whose
    // OpenDHT seq it no longer knows; storing nodes would keep refreshing the old
    // content), and `generation` moves to a new id when the 16-bit seq wraps.
    od::Value::Id derive_id(std::uint64_t value_id, std::uint64_t generation) const {
        std::uint8_t v[16];
        for (int i = 0; i < 8; ++i) {
            v[i] = static_cast<std::uint8_t>(value_id >> (8 * i));
            v[8 + i] = static_cast<std::uint8_t>(generation >> (8 * i));
        }
        const Hash32 h = crypto::blake2b({as_bytes("patchswarm/dht-value-id/v1"), ByteView(salt),
                                          ByteView(v, sizeof v)});
        od::Value::Id id = 0;
        for (int i = 0; i < 8; ++i) id |= od::Value::Id{h[i]} << (8 * i);
        return id == od::Value::INVALID_ID ? 1 : id;
    }

    od::ValueType holder_type() const;
    od::ValueType manifest_type() const;
    void join();
    void complete_pending();
};

}  // namespace ps::dht
