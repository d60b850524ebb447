// OpenDHT's UDP socket behind a datagram gate (internal to dht/: included by
// dht/dht.cpp only, like every OpenDHT header).
#pragma once

#include <opendht/network_utils.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>

#include "dht/datagram.hpp"

namespace ps::dht {

namespace od = ::dht;

// Counters of datagrams dropped unread; written on OpenDHT's receive thread.
struct DatagramDrops {
    std::atomic<std::uint64_t> too_large{0}, malformed{0}, rate_limited{0};
};

// Datagrams and bytes through the socket, each way, in total and by kind
// (dht/datagram.hpp); received ones are counted before the gate.
struct DatagramTraffic {
    struct Way {
        std::atomic<std::uint64_t> packets{0}, bytes{0};
        std::array<std::atomic<std::uint64_t>, kDatagramKinds> by_kind{};
        void count(const std::uint8_t* data, std::size_t size) {
            packets++;
            bytes += size;
            by_kind[static_cast<std::size_t>(classify_datagram(ByteView(data, size)))]++;
        }
    };
    Way in, out;
};

// OpenDHT's own UDP socket with a gate in front of its decoder: OpenDHT
// 2.4.12 lets a DhtRunner run on any DatagramSocket (Context::sock), so this
// one wraps the stock UdpSocket, checks each received batch on its receive
// thread (dht/datagram.hpp) and hands only what passes to OpenDHT.
class FilteredSocket final : public od::net::DatagramSocket {
public:
    FilteredSocket(const od::SockAddr& bind4, const od::SockAddr& bind6, std::size_t max_bytes, std::size_t max_depth,
                   double rate, std::shared_ptr<DatagramDrops> drops, std::shared_ptr<DatagramTraffic> traffic)
        : max_bytes_(max_bytes),
          max_depth_(max_depth),
          limit_(rate),
          drops_(std::move(drops)),
          traffic_(std::move(traffic)),
          inner_(bind4, bind6) {
        inner_.setOnReceive([this](od::net::PacketList&& pkts) { return gate(std::move(pkts)); });
    }
    ~FilteredSocket() override { inner_.stop(); }

    int sendTo(const od::SockAddr& dest, const std::uint8_t* data, std::size_t size, bool replied) override {
        traffic_->out.count(data, size);
        return inner_.sendTo(dest, data, size, replied);
    }
    bool hasIPv4() const override { return inner_.hasIPv4(); }
    bool hasIPv6() const override { return inner_.hasIPv6(); }
    const od::SockAddr& getBoundRef(sa_family_t family = AF_UNSPEC) const override {
        return inner_.getBoundRef(family);
    }
    void stop() override { inner_.stop(); }

private:
    static SourceRateLimit::Addr source(const od::SockAddr& a) {
        SourceRateLimit::Addr out{};
        out[0] = static_cast<std::uint8_t>(a.getFamily());
        if (a.getFamily() == AF_INET) {
            auto& in = a.getIPv4().sin_addr;
            std::memcpy(out.data() + 1, &in, 4);
        } else if (a.getFamily() == AF_INET6) {
            auto& in6 = a.getIPv6().sin6_addr;
            std::memcpy(out.data() + 1, &in6, 16);
        }
        return out;
    }

    // Runs on the inner socket's receive thread. Returns the packets to recycle.
    od::net::PacketList gate(od::net::PacketList&& pkts) {
        od::net::PacketList pass, drop;
        const auto now = SourceRateLimit::Clock::now();
        while (!pkts.empty()) {
            auto it = pkts.begin();
            traffic_->in.count(it->data.data(), it->data.size());
            auto v = check_datagram_shape(ByteView(it->data.data(), it->data.size()), max_bytes_, max_depth_);
            if (v == DatagramVerdict::Ok && !limit_.allow(source(it->from), now)) v = DatagramVerdict::RateLimited;
            if (v == DatagramVerdict::TooLarge) drops_->too_large++;
            else if (v == DatagramVerdict::TooDeep || v == DatagramVerdict::Malformed) drops_->malformed++;
            else if (v == DatagramVerdict::RateLimited) drops_->rate_limited++;
            if (v != DatagramVerdict::Ok) it->data.clear();  // recycled: the socket appends to it
            auto& to = v == DatagramVerdict::Ok ? pass : drop;
            to.splice(to.end(), pkts, it);
        }
        if (!pass.empty()) {
            onReceived(std::move(pass));
            // What OpenDHT gave back for recycling went to this socket's
            // queue; pass it on to the inner socket, which reuses packets.
            for (;;) {
                auto p = getNewPacket();
                if (p.front().data.capacity() == 0) break;  // queue empty: a fresh packet
                p.front().data.clear();
                drop.splice(drop.end(), p);
            }
        }
        return drop;
    }

    std::size_t max_bytes_, max_depth_;
    SourceRateLimit limit_;
    std::shared_ptr<DatagramDrops> drops_;
    std::shared_ptr<DatagramTraffic> traffic_;
    od::net::UdpSocket inner_;  // last: its thread calls gate() as soon as it exists
};

}  // namespace ps::dht
