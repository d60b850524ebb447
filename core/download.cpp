#include "core/download.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ps::core {

Download::Download(std::uint32_t segment_count, DownloadConfig cfg, std::uint64_t seed)
    : cfg_(cfg), held_(segment_count), rank_(segment_count), availability_(segment_count, 0),
      in_flight_(segment_count) {
    // Fisher-Yates over the identity permutation gives each segment a random rank.
    std::vector<std::uint32_t> perm(segment_count);
    std::iota(perm.begin(), perm.end(), 0u);
    Rng rng(seed);
    for (std::uint32_t i = segment_count; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
    for (std::uint32_t i = 0; i < segment_count; ++i) rank_[perm[i]] = i;
}

void Download::mark_held(std::uint32_t seg) { held_.set(seg); }

void Download::add_peer(PeerId peer, SourceClass cls, Millis now) {
    if (!started_) started_ = now;  // the rung delays count from the first holder met
    auto [it, inserted] = peers_.try_emplace(peer, Peer{cls, Bitfield(held_.size())});
    if (!inserted) it->second.cls = cls;
    if (inserted) it->second.last_gain = now;  // a super-node met just now may be starting its download
}

void Download::forget_have(Peer& p) {
    if (p.banned) return;  // a banned peer's holdings were never counted
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        if (p.have.test(s)) --availability_[s];
}

void Download::remove_peer(PeerId peer) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    for (std::uint32_t s = 0; s < held_.size() && it->second.in_flight; ++s) drop_request(peer, s);
    forget_have(it->second);
    peers_.erase(it);
}

void Download::peer_bitfield(PeerId peer, const Bitfield& have) {
    auto it = peers_.find(peer);
    if (it == peers_.end() || have.size() != held_.size()) return;
    forget_have(it->second);
    it->second.have = have;
    if (it->second.banned) return;
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        if (have.test(s)) ++availability_[s];
}

void Download::peer_has(PeerId peer, std::uint32_t seg) {
    auto it = peers_.find(peer);
    if (it == peers_.end() || seg >= held_.size() || it->second.have.test(seg)) return;
    it->second.have.set(seg);
    if (!it->second.banned) ++availability_[seg];
}

bool Download::is_banned(PeerId peer) const {
    auto it = peers_.find(peer);
    return it != peers_.end() && it->second.banned;
}

bool Download::is_requested(PeerId peer, std::uint32_t seg) const {
    if (seg >= in_flight_.size()) return false;
    for (auto& f : in_flight_[seg])
        if (f.peer == peer) return true;
    return false;
}

void Download::drop_request(PeerId peer, std::uint32_t seg) {
    auto& v = in_flight_[seg];
    for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->peer != peer) continue;
        v.erase(it);
        --in_flight_total_;
        if (auto p = peers_.find(peer); p != peers_.end()) --p->second.in_flight;
        return;
    }
}

void Download::segment_done(PeerId peer, std::uint32_t seg, bool valid, std::vector<Action>& out) {
    if (seg >= held_.size()) return;
    drop_request(peer, seg);
    if (!valid) {
        auto it = peers_.find(peer);
        if (it == peers_.end() || it->second.banned) return;
        forget_have(it->second);
        it->second.banned = true;
        for (std::uint32_t s = 0; s < held_.size() && it->second.in_flight; ++s)
            if (is_requested(peer, s)) {
                drop_request(peer, s);
                out.push_back({Action::Cancel, peer, s});
            }
        return;
    }
    held_.set(seg);
    while (!in_flight_[seg].empty()) {
        PeerId other = in_flight_[seg].front().peer;
        drop_request(other, seg);
        out.push_back({Action::Cancel, other, seg});
    }
}

void Download::withdraw(PeerId peer, std::uint32_t seg, std::vector<Action>& out) {
    if (!is_requested(peer, seg)) return;
    drop_request(peer, seg);
    out.push_back({Action::Cancel, peer, seg});
}

void Download::rejected(PeerId peer, std::uint32_t seg, RejectReason why, Millis now) {
    if (seg >= held_.size()) return;
    drop_request(peer, seg);
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    Peer& p = it->second;
    switch (why) {
        case RejectReason::Busy: p.backoff_until = now + cfg_.busy_backoff; break;
        case RejectReason::NotHeld:
            if (p.have.test(seg)) {
                p.have.reset(seg);
                if (!p.banned) --availability_[seg];
            }
            break;
        case RejectReason::Banned:
        case RejectReason::UnknownPatch: p.backoff_until = now + cfg_.stall_backoff; break;
    }
}

void Download::progress(PeerId peer, Millis now, std::uint64_t bytes) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    Peer& p = it->second;
    p.last_progress = now;
    if (!bytes) return;
    if (p.sample_bytes == 0) p.sample_start = now;
    p.sample_bytes += bytes;
    // A sample every quarter second or more of arrivals: bytes per ms, smoothed.
    if (now >= p.sample_start + 250) {
        double r = static_cast<double>(p.sample_bytes) / static_cast<double>(now - p.sample_start);
        p.rate = p.rate > 0 ? 0.5 * p.rate + 0.5 * r : r;
        p.sample_bytes = 0;
    }
}

std::uint32_t Download::pipeline(const Peer& p) const {
    if (!cfg_.pipeline_target) return cfg_.max_requests_per_peer;
    // Before the first sample, one request: it measures the holder. (Starting
    // with the full pipeline was slower on capped links: 80 s against 66 s in
    // the simulator's operator network, as every holder got four segments
    // queued before anyone knew it was shared.)
    double want = p.rate * static_cast<double>(cfg_.pipeline_target) / static_cast<double>(segment_bytes_);
    auto n = static_cast<std::uint32_t>(std::ceil(want));
    return std::clamp<std::uint32_t>(n, 1, cfg_.max_requests_per_peer);
}

bool Download::usable(const Peer& p, Millis now) const {
    if (p.banned || p.backoff_until > now) return false;
    int rung = static_cast<int>(p.cls);
    if (*started_ + cfg_.rung_delay[rung] > now) return false;
    if (cfg_.local_first && rung >= static_cast<int>(SourceClass::OtherDomain) && *started_ + cfg_.local_far_delay > now)
        return false;
    if (now < *started_ + cfg_.connect_wait)
        for (int r = 0; r < rung; ++r)
            if (connecting_[r] > 0) return false;
    return true;
}

bool Download::can_ask(const Peer& p, Millis now) const {
    return usable(p, now) && p.in_flight < pipeline(p) && in_flight_total_ < cfg_.max_requests_total;
}

const PeerId* Download::pick_holder(std::uint32_t seg, Millis now, bool endgame) {
    // The nearest rung with a usable holder of this segment. Full pipelines do
    // not send us down the ladder (the request waits for a slot); only holders
    // that are busy, stalled or banned do.
    int rung = kSourceClasses;
    for (auto& [id, p] : peers_)
        if (p.have.test(seg) && usable(p, now) && !(endgame && is_requested(id, seg)))
            rung = std::min(rung, static_cast<int>(p.cls));
    if (endgame) {
        // A duplicate never goes farther down the ladder than the request it
        // doubles: a slow cache must not turn into traffic between domains.
        int asked = kSourceClasses;
        for (auto& f : in_flight_[seg])
            if (auto it = peers_.find(f.peer); it != peers_.end()) asked = std::min(asked, static_cast<int>(it->second.cls));
        if (rung > asked) return nullptr;
    }
    const PeerId* best = nullptr;
    const Peer* bp = nullptr;
    for (auto& [id, p] : peers_) {
        if (static_cast<int>(p.cls) != rung || !p.have.test(seg) || !can_ask(p, now)) continue;
        if (endgame && is_requested(id, seg)) continue;
        if (!bp || p.in_flight < bp->in_flight) {
            best = &id;
            bp = &p;
        }
    }
    return best;
}

void Download::request(PeerId peer, std::uint32_t seg, Millis now, std::vector<Action>& out) {
    in_flight_[seg].push_back({peer, now});
    ++in_flight_total_;
    ++peers_.at(peer).in_flight;
    out.push_back({Action::Request, peer, seg});
}

void Download::pump(Millis now, std::vector<Action>& out) {
    if (held_.all()) return;
    bool any_slot = false;
    for (auto& [id, p] : peers_) any_slot |= can_ask(p, now);
    if (!any_slot) return;

    // Segments nobody is fetching, rarest first, random tie-break.
    scratch_.clear();
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        if (!held_.test(s) && in_flight_[s].empty() && availability_[s] > 0) scratch_.push_back(s);
    auto rarest = [&](std::uint32_t a, std::uint32_t b) {
        if (availability_[a] != availability_[b]) return availability_[a] < availability_[b];
        return rank_[a] < rank_[b];
    };
    std::sort(scratch_.begin(), scratch_.end(), rarest);
    auto local_in_flight = [&] {
        std::uint32_t n = 0;
        for (auto& [id, p] : peers_)
            if (p.cls == SourceClass::SameDomainPeer || p.cls == SourceClass::SameDomainSuper) n += p.in_flight;
        return n;
    };
    std::uint32_t local = cfg_.local_first ? local_in_flight() : 0;
    // A same-domain super-node that is still downloading and progressing counts
    // as "something comes from the domain": it will soon hold what we lack.
    if (cfg_.local_first)
        for (auto& [id, p] : peers_) {
            if (p.cls != SourceClass::SameDomainSuper) continue;
            std::uint32_t n = p.have.count();
            if (n != p.seen_count) {
                p.seen_count = n;
                p.last_gain = now;
            }
            if (p.banned) continue;
            if (usable(p, now) && n < held_.size() && now < p.last_gain + cfg_.local_super_wait) ++local;
            // A super-node that only answered busy (it hands a segment out once
            // per reserve period) still holds what we lack: it, or a peer it
            // served, will give it to us. That is no reason to go afar.
            else if (p.backoff_until > now && p.backoff_until <= now + cfg_.busy_backoff && lacks_from(p)) ++local;
        }
    // local_first: the own domain first, then afar only if nothing comes from
    // it. A coordinated import goes afar for its share only.
    for (int pass = cfg_.local_first || share_ ? 0 : 1; pass < 2; ++pass) {
        if (pass == 1 && (local > 0 || share_)) break;
        for (auto s : scratch_) {
            if (!in_flight_[s].empty()) continue;  // asked for in the first pass
            const PeerId* p = pick_holder(s, now, false);
            if (!p) continue;
            auto cls = peers_.at(*p).cls;
            bool far = cls == SourceClass::OtherDomain || cls == SourceClass::Origin;
            if (pass == 0 && far && !(share_ && share_->test(s))) continue;
            request(*p, s, now, out);
            local += !far;
        }
    }

    // Endgame: every missing segment is on its way; ask a second holder for the
    // ones that have been waiting a while.
    scratch_.clear();
    for (std::uint32_t s = 0; s < held_.size(); ++s) {
        if (held_.test(s)) continue;
        if (in_flight_[s].empty()) return;  // not endgame yet
        if (in_flight_[s].size() < cfg_.max_requests_per_segment_endgame && quiet_since(in_flight_[s].front()) + cfg_.endgame_after <= now)
            scratch_.push_back(s);
    }
    std::sort(scratch_.begin(), scratch_.end(), rarest);
    for (auto s : scratch_)
        if (const PeerId* p = pick_holder(s, now, true)) request(*p, s, now, out);
}

double Download::rate_of(PeerId peer) const {
    auto it = peers_.find(peer);
    return it == peers_.end() ? 0.0 : it->second.rate * 1000.0;
}

bool Download::held_nearby(std::uint32_t seg) const {
    if (seg >= held_.size()) return false;
    for (auto& [id, p] : peers_)
        if (!p.banned && p.cls <= SourceClass::SameDomainSuper && p.have.test(seg)) return true;
    return false;
}

// Whether `p` holds a segment we lack.
bool Download::lacks_from(const Peer& p) const {
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        if (p.have.test(s) && !held_.test(s)) return true;
    return false;
}

// When a request last showed life: when it was sent, or when its holder last
// sent us bytes, whichever is later.
Millis Download::quiet_since(const InFlight& f) const {
    auto it = peers_.find(f.peer);
    if (it == peers_.end() || !useful(it->second)) return f.since;
    return std::max(f.since, it->second.last_progress);
}

// Whether the holder's measured rate keeps its requests alive (unmeasured: yes).
bool Download::useful(const Peer& p) const {
    return p.rate <= 0 || p.rate * 1000.0 >= static_cast<double>(cfg_.min_useful_rate);
}

void Download::tick(Millis now, std::vector<Action>& out) {
    expire(now, out);
    pump(now, out);
}

void Download::expire(Millis now, std::vector<Action>& out) {
    for (std::uint32_t s = 0; s < held_.size(); ++s) {
        auto& v = in_flight_[s];
        for (std::size_t i = 0; i < v.size();) {
            if (quiet_since(v[i]) + cfg_.request_timeout > now) {
                ++i;
                continue;
            }
            PeerId peer = v[i].peer;
            drop_request(peer, s);  // erases v[i]
            if (auto it = peers_.find(peer); it != peers_.end())
                it->second.backoff_until = now + cfg_.stall_backoff;
            out.push_back({Action::Cancel, peer, s});
        }
    }
}

std::optional<Millis> Download::next_deadline(Millis now) const {
    if (held_.all() || !started_) return std::nullopt;
    std::optional<Millis> best;
    auto consider = [&](Millis t) {
        if (t > now && (!best || t < *best)) best = t;
    };
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        for (auto& f : in_flight_[s]) {
            Millis alive = quiet_since(f);
            consider(alive + cfg_.request_timeout);
            consider(quiet_since(f) + cfg_.endgame_after);
        }
    for (auto& [id, p] : peers_) {
        consider(p.backoff_until);
        if (p.cls == SourceClass::SameDomainSuper) consider(p.last_gain + cfg_.local_super_wait);
    }
    for (auto d : cfg_.rung_delay) consider(*started_ + d);
    consider(*started_ + cfg_.connect_wait);
    if (cfg_.local_first) consider(*started_ + cfg_.local_far_delay);
    return best;
}

}  // namespace ps::core
