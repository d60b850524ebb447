#include "dht/datagram.hpp"

#include <algorithm>

namespace ps::dht {

const char* to_string(DatagramVerdict v) {
    switch (v) {
        case DatagramVerdict::Ok: return "ok";
        case DatagramVerdict::TooLarge: return "too large";
        case DatagramVerdict::TooDeep: return "nested too deep";
        case DatagramVerdict::Malformed: return "malformed msgpack";
        case DatagramVerdict::RateLimited: return "over the per-source rate";
    }
    return "?";
}

namespace {

// Reads a big-endian unsigned integer of n bytes at p (bounds checked by the caller).
std::uint64_t be(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
}

}  // namespace

DatagramVerdict check_datagram_shape(ByteView data, std::size_t max_bytes, std::size_t max_depth) {
    if (data.size() > max_bytes) return DatagramVerdict::TooLarge;
    const std::uint8_t* p = data.data();
    std::size_t left = data.size();
    // Open containers: elements each still expects. `pending` is their sum,
    // kept <= bytes left (every element needs at least one byte).
    std::uint64_t stack[64];
    std::size_t depth = 0;
    std::uint64_t pending = 0;
    if (max_depth > 64) max_depth = 64;
    auto take = [&](std::size_t n) {
        if (n > left) return false;
        p += n;
        left -= n;
        return true;
    };
    do {
        if (left == 0) return DatagramVerdict::Malformed;
        // One element of the innermost container is being read now.
        if (depth > 0) {
            --stack[depth - 1];
            --pending;
        }
        const std::uint8_t b = *p;
        take(1);
        std::uint64_t container = 0;  // elements of a container opened here
        bool opens = false;
        std::size_t skip = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            skip = 0;
        } else if (b >= 0x80 && b <= 0x8f) {
            opens = true, container = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            opens = true, container = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            int len_bytes = 0;  // a length field of this many bytes follows
            std::size_t fixed = 0;
            switch (b) {
                case 0xc4: case 0xd9: len_bytes = 1; break;           // bin8, str8
                case 0xc5: case 0xda: len_bytes = 2; break;           // bin16, str16
                case 0xc6: case 0xdb: len_bytes = 4; break;           // bin32, str32
                case 0xc7: len_bytes = 1, fixed = 1; break;           // ext8 (+type)
                case 0xc8: len_bytes = 2, fixed = 1; break;           // ext16
                case 0xc9: len_bytes = 4, fixed = 1; break;           // ext32
                case 0xca: fixed = 4; break;                          // float32
                case 0xcb: fixed = 8; break;                          // float64
                case 0xcc: case 0xd0: fixed = 1; break;
                case 0xcd: case 0xd1: fixed = 2; break;
                case 0xce: case 0xd2: fixed = 4; break;
                case 0xcf: case 0xd3: fixed = 8; break;
                case 0xd4: fixed = 2; break;                          // fixext1..16 (+type)
                case 0xd5: fixed = 3; break;
                case 0xd6: fixed = 5; break;
                case 0xd7: fixed = 9; break;
                case 0xd8: fixed = 17; break;
                case 0xdc: case 0xde: len_bytes = 2, opens = true; break;  // array16, map16
                case 0xdd: case 0xdf: len_bytes = 4, opens = true; break;  // array32, map32
                default: return DatagramVerdict::Malformed;              // 0xc1: never used
            }
            std::uint64_t len = 0;
            if (len_bytes) {
                if (static_cast<std::size_t>(len_bytes) > left) return DatagramVerdict::Malformed;
                len = be(p, len_bytes);
                take(static_cast<std::size_t>(len_bytes));
            }
            if (opens) {
                container = (b == 0xde || b == 0xdf) ? 2 * len : len;
            } else {
                if (len > left) return DatagramVerdict::Malformed;
                skip = fixed + static_cast<std::size_t>(len);
            }
        }
        if (!take(skip)) return DatagramVerdict::Malformed;
        if (opens && container > 0) {
            if (depth >= max_depth) return DatagramVerdict::TooDeep;
            if (pending + container > left) return DatagramVerdict::Malformed;
            stack[depth++] = container;
            pending += container;
        }
        while (depth > 0 && stack[depth - 1] == 0) --depth;
    } while (depth > 0);
    return DatagramVerdict::Ok;
}

bool SourceRateLimit::allow(const Addr& from, Clock::time_point now) {
    if (rate_ <= 0) return true;
    const double burst = 2 * rate_;
    std::lock_guard lock(mu_);
    auto it = buckets_.find(from);
    if (it == buckets_.end()) {
        if (buckets_.size() >= kMaxSources) {
            // Forget sources whose bucket has refilled (idle), then, if still full, all.
            std::erase_if(buckets_, [&](const auto& e) {
                return e.second.tokens + std::chrono::duration<double>(now - e.second.last).count() * rate_ >= burst;
            });
            if (buckets_.size() >= kMaxSources) buckets_.clear();
        }
        it = buckets_.emplace(from, Bucket{burst, now}).first;
    }
    auto& bk = it->second;
    bk.tokens = std::min(burst, bk.tokens + std::chrono::duration<double>(now - bk.last).count() * rate_);
    bk.last = now;
    if (bk.tokens < 1) return false;
    bk.tokens -= 1;
    return true;
}

}  // namespace ps::dht
