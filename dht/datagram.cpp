#include "dht/datagram.hpp"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

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

const char* to_string(DatagramKind k) {
    static constexpr const char* names[kDatagramKinds] = {"ping",  "find", "get",   "put",   "listen",     "refresh",
                                                          "updt",  "query", "reply", "error", "value_part", "other"};
    return names[static_cast<std::size_t>(k)];
}

namespace {

// The name of the query: a fixstr of 3 to 7 bytes after the one-character key
// "q" (a1 71). The same two bytes are also the value "q" of the key "y", which
// a one-character value tells apart.
std::string_view query_name(ByteView data) {
    const std::string_view hay(reinterpret_cast<const char*>(data.data()), data.size());
    for (auto at = hay.find("\xa1q"); at != std::string_view::npos; at = hay.find("\xa1q", at + 1)) {
        const std::size_t v = at + 2;
        if (v >= hay.size() || (data[v] & 0xe0) != 0xa0) continue;
        const std::size_t n = data[v] & 0x1f;
        if (n >= 3 && n <= 7 && v + 1 + n <= hay.size()) return hay.substr(v + 1, n);
    }
    return {};
}

DatagramKind query_kind(ByteView data) {
    static constexpr std::pair<std::string_view, DatagramKind> names[] = {
        {"ping", DatagramKind::Ping},     {"find", DatagramKind::Find},         {"get", DatagramKind::Get},
        {"put", DatagramKind::Put},       {"listen", DatagramKind::Listen},     {"refresh", DatagramKind::Refresh},
        {"updt", DatagramKind::Update}};
    const auto q = query_name(data);
    for (auto& [name, kind] : names)
        if (q == name) return kind;
    return DatagramKind::OtherQuery;
}

}  // namespace

DatagramKind classify_datagram(ByteView data) {
    // "y" as a one-character key, then a one-character fixstr value.
    const std::string_view hay(reinterpret_cast<const char*>(data.data()), data.size());
    const auto at = hay.find("\xa1y\xa1");
    if (at == std::string_view::npos || at + 3 >= hay.size()) return DatagramKind::Other;
    switch (hay[at + 3]) {
        case 'q': return query_kind(data);
        case 'r': return DatagramKind::Reply;
        case 'e': return DatagramKind::Error;
        case 'v': return DatagramKind::ValuePart;
        default: return DatagramKind::Other;
    }
}

namespace {

// Reads a big-endian unsigned integer of n bytes at p (bounds checked by the caller).
std::uint64_t be(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
}

// A msgpack header byte past the single-byte forms: how many length bytes
// follow, how many fixed bytes, and whether it opens a container.
struct Head {
    int len_bytes = 0;
    std::size_t fixed = 0;
    bool opens = false;
};
std::optional<Head> head_of(std::uint8_t b) {
    switch (b) {
        case 0xc4: case 0xd9: return Head{1, 0, false};  // bin8, str8
        case 0xc5: case 0xda: return Head{2, 0, false};  // bin16, str16
        case 0xc6: case 0xdb: return Head{4, 0, false};  // bin32, str32
        case 0xc7: return Head{1, 1, false};             // ext8 (+type)
        case 0xc8: return Head{2, 1, false};             // ext16
        case 0xc9: return Head{4, 1, false};             // ext32
        case 0xca: return Head{0, 4, false};             // float32
        case 0xcb: return Head{0, 8, false};             // float64
        case 0xcc: case 0xd0: return Head{0, 1, false};
        case 0xcd: case 0xd1: return Head{0, 2, false};
        case 0xce: case 0xd2: return Head{0, 4, false};
        case 0xcf: case 0xd3: return Head{0, 8, false};
        case 0xd4: return Head{0, 2, false};             // fixext1..16 (+type)
        case 0xd5: return Head{0, 3, false};
        case 0xd6: return Head{0, 5, false};
        case 0xd7: return Head{0, 9, false};
        case 0xd8: return Head{0, 17, false};
        case 0xdc: case 0xde: return Head{2, 0, true};   // array16, map16
        case 0xdd: case 0xdf: return Head{4, 0, true};   // array32, map32
        default: return std::nullopt;
    }
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
            auto h = head_of(b);
            if (!h) return DatagramVerdict::Malformed;  // 0xc1: never used
            int len_bytes = h->len_bytes;
            std::size_t fixed = h->fixed;
            opens = h->opens;
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
