// Sans-IO policies of the serving side: whether to keep seeding, how fast to
// go (token buckets), and who gets served next (upload slots, fair queueing).
// Like core::Download, these take time as an argument and own no clock.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "core/download.hpp"

namespace ps::core {

// Whether to keep serving after the download completed: until the node has
// uploaded `ratio` times what it downloaded, or `max_seconds` passed, whichever
// comes first. ratio <= 0 means stop at once.
struct SeedPolicy {
    double ratio = 1.0;
    double max_seconds = 600;
    bool keep_seeding(std::uint64_t uploaded, std::uint64_t downloaded, double seconds_since_complete) const {
        if (ratio <= 0) return false;
        if (seconds_since_complete >= max_seconds) return false;
        return static_cast<double>(uploaded) < ratio * static_cast<double>(downloaded);
    }
};

// A token bucket in bytes. rate 0 = unlimited. Spending may overdraw (a
// segment goes out whole); the owner waits until the balance is back to zero.
class TokenBucket {
public:
    TokenBucket() = default;
    TokenBucket(std::uint64_t bytes_per_s, std::uint64_t burst) { set_rate(0, bytes_per_s, burst); }

    void set_rate(Millis now, std::uint64_t bytes_per_s, std::uint64_t burst) {
        refill(now);
        rate_ = bytes_per_s;
        burst_ = static_cast<double>(burst ? burst : bytes_per_s);
        if (tokens_ > burst_) tokens_ = burst_;
    }
    bool unlimited() const { return rate_ == 0; }
    std::uint64_t rate() const { return rate_; }
    // True when a send may start now.
    bool ready(Millis now) {
        if (unlimited()) return true;
        refill(now);
        return tokens_ >= 0;
    }
    void spend(Millis now, std::uint64_t bytes) {
        if (unlimited()) return;
        refill(now);
        tokens_ -= static_cast<double>(bytes);
    }
    // Milliseconds until ready() turns true (0 if it is).
    Millis wait(Millis now) {
        if (ready(now)) return 0;
        return static_cast<Millis>(-tokens_ * 1000.0 / static_cast<double>(rate_)) + 1;
    }

private:
    void refill(Millis now) {
        if (now > last_) tokens_ += static_cast<double>(now - last_) * static_cast<double>(rate_) / 1000.0;
        if (tokens_ > burst_) tokens_ = burst_;
        last_ = now;
    }
    std::uint64_t rate_ = 0;
    double burst_ = 0;
    double tokens_ = 0;
    Millis last_ = 0;
};

// Who gets served, and in which order. A peer holds an upload slot while it has
// requests queued with us; at most `slots` peers at once, others are answered
// busy (so they climb down their source ladder). Queued requests are served
// round-robin across peers, one segment per turn, within the rate limit.
struct UploadConfig {
    std::uint32_t slots = 8;                // peers served at once
    std::uint32_t max_queued_per_peer = 8;  // beyond: busy
    // Slots only priority requesters (super-nodes, at the origin) may take, so
    // that a flash crowd of devices cannot lock the caches out.
    std::uint32_t reserved_for_priority = 0;
};

class Uploads {
public:
    using Config = UploadConfig;
    struct Item {
        PeerId peer;
        std::uint64_t what;  // the driver's cookie (which patch, which segment)
        bool operator==(const Item&) const = default;
    };
    enum class Verdict { Queued, Busy, NotHeld, Banned, Paused };

    explicit Uploads(Config cfg = {}) : cfg_(cfg) {}
    void set_config(Config cfg) { cfg_ = cfg; }
    void set_rate(Millis now, std::uint64_t bytes_per_s, std::uint64_t burst) { bucket_.set_rate(now, bytes_per_s, burst); }

    Verdict request(PeerId peer, std::uint64_t what, bool held, bool banned, bool priority = false) {
        if (banned) return Verdict::Banned;
        if (!held) return Verdict::NotHeld;
        if (paused_) return Verdict::Paused;
        auto it = queues_.find(peer);
        if (it == queues_.end()) {
            std::uint32_t open = priority ? cfg_.slots : cfg_.slots - std::min(cfg_.slots, cfg_.reserved_for_priority);
            if (queues_.size() >= open) return Verdict::Busy;
            it = queues_.emplace(peer, std::deque<std::uint64_t>{}).first;
        }
        if (it->second.size() >= cfg_.max_queued_per_peer) return Verdict::Busy;
        it->second.push_back(what);
        return Verdict::Queued;
    }
    void cancel(PeerId peer, std::uint64_t what) {
        auto it = queues_.find(peer);
        if (it == queues_.end()) return;
        for (auto q = it->second.begin(); q != it->second.end(); ++q)
            if (*q == what) {
                it->second.erase(q);
                break;
            }
        if (it->second.empty()) queues_.erase(it);
    }
    void peer_gone(PeerId peer) { queues_.erase(peer); }

    // While paused (a device policy refuses uploads: core/device_policy.hpp)
    // every request is answered Paused and nothing is served. Pausing hands
    // back what was queued, so that the driver can tell those peers to go
    // elsewhere at once.
    std::vector<Item> set_paused(bool paused) {
        std::vector<Item> dropped;
        if (paused && !paused_)
            for (auto& [peer, q] : queues_)
                for (auto what : q) dropped.push_back({peer, what});
        if (paused) queues_.clear();
        paused_ = paused;
        return dropped;
    }
    bool paused() const { return paused_; }

    // The next request to serve: round-robin over peers that `writable` accepts,
    // nothing while the rate limit is overdrawn. The driver then calls sent().
    template <typename Writable>
    std::optional<Item> next(Millis now, Writable&& writable) {
        if (queues_.empty() || !bucket_.ready(now)) return std::nullopt;
        auto start = queues_.upper_bound(cursor_);
        for (std::size_t n = 0; n < queues_.size(); ++n) {
            if (start == queues_.end()) start = queues_.begin();
            if (writable(start->first)) {
                Item item{start->first, start->second.front()};
                cursor_ = start->first;
                start->second.pop_front();
                if (start->second.empty()) queues_.erase(start);
                return item;
            }
            ++start;
        }
        return std::nullopt;
    }
    void sent(Millis now, std::uint64_t bytes) { bucket_.spend(now, bytes); }
    Millis wait(Millis now) { return bucket_.wait(now); }

    std::size_t active_peers() const { return queues_.size(); }
    std::size_t queued(PeerId peer) const {
        auto it = queues_.find(peer);
        return it == queues_.end() ? 0 : it->second.size();
    }

private:
    Config cfg_;
    TokenBucket bucket_;
    std::map<PeerId, std::deque<std::uint64_t>> queues_;  // ordered: fair turn order is deterministic
    PeerId cursor_ = 0;
    bool paused_ = false;
};

// Super-seeding, for the origin: hand out each segment once, and again only
// after `reserve` has passed, so that the swarm — not the origin — makes the
// further copies. Requests for a segment served too recently are answered busy;
// the requester takes it from a nearer holder meanwhile.
class SuperSeeding {
public:
    SuperSeeding(std::uint32_t segments, Millis reserve) : reserve_(reserve), last_(segments, kNever) {}
    bool allow(std::uint32_t seg, Millis now) const { return allow(seg, now, reserve_); }
    // With a reserve of the caller's choosing for this request.
    bool allow(std::uint32_t seg, Millis now, Millis reserve) const {
        return seg < last_.size() && (last_[seg] == kNever || now >= last_[seg] + reserve);
    }
    void served(std::uint32_t seg, Millis now) {
        if (seg < last_.size()) last_[seg] = now;
    }
    std::uint32_t served_count() const {
        std::uint32_t n = 0;
        for (auto t : last_) n += t != kNever;
        return n;
    }

private:
    static constexpr Millis kNever = ~Millis{0};
    Millis reserve_;
    std::vector<Millis> last_;
};

}  // namespace ps::core
