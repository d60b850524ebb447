// dht/datagram: checks every UDP datagram before OpenDHT decodes it.
//
// OpenDHT 2.4.12 hands each datagram to msgpack-c, which sizes arrays and maps
// from their headers before reading any element and has no depth limit: one
// 60 KB datagram of nested array headers made it reserve about a terabyte of
// address space. These checks are cheap, allocate nothing and run on
// OpenDHT's receive thread: a size cap, a walk of the msgpack structure that
// bounds the nesting depth and refuses any container that declares more
// elements than bytes are left, and a per-source-IP rate limit.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "core/bytes.hpp"

namespace ps::dht {

// Legitimate OpenDHT 2.4.12 packets stay small: values over 600 bytes travel
// as separate "value parts" of about one MTU each.
inline constexpr std::size_t kMaxDatagramBytes = 16 * 1024;
inline constexpr std::size_t kMaxDatagramDepth = 16;

enum class DatagramVerdict { Ok, TooLarge, TooDeep, Malformed, RateLimited };
const char* to_string(DatagramVerdict);

// The shape check alone (pure, any thread): the first msgpack object of
// `data` must be complete, nest at most max_depth containers, and no container
// may declare more elements than bytes remain (each element takes at least
// one byte), so whatever msgpack-c reserves is bounded by the datagram size.
DatagramVerdict check_datagram_shape(ByteView data, std::size_t max_bytes = kMaxDatagramBytes,
                                     std::size_t max_depth = kMaxDatagramDepth);

// What an OpenDHT 2.4.12 datagram carries, read from its top-level "y" (query,
// reply, error, value part) and "q" (the query's name) fields: enough to tell
// which traffic dominates. A heuristic byte scan, for counting only.
enum class DatagramKind { Ping, Find, Get, Put, Listen, Refresh, Update, OtherQuery, Reply, Error, ValuePart, Other };
inline constexpr std::size_t kDatagramKinds = 12;
const char* to_string(DatagramKind);
DatagramKind classify_datagram(ByteView data);

// Token bucket per source address (IPv4 or IPv6, port ignored): `rate`
// datagrams a second, bursts up to twice that. Thread-safe. Tracks at most
// kMaxSources addresses; when full, idle ones are forgotten first.
class SourceRateLimit {
public:
    static constexpr std::size_t kMaxSources = 8192;
    using Clock = std::chrono::steady_clock;
    using Addr = std::array<std::uint8_t, 17>;  // family byte + up to 16 address bytes
    explicit SourceRateLimit(double rate) : rate_(rate) {}
    bool allow(const Addr& from, Clock::time_point now);

private:
    struct Bucket {
        double tokens = 0;
        Clock::time_point last;
    };
    double rate_;
    std::mutex mu_;
    std::map<Addr, Bucket> buckets_;
};

}  // namespace ps::dht
