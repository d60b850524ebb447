#include "core/download.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <utility>

namespace ps::core {

Download::Download(std::uint32_t segment_count, DownloadConfig cfg, std::uint64_t seed)
    : cfg_(cfg), held_(segment_count), rank_(segment_count), by_rank_(segment_count),
      availability_(segment_count, 0), in_flight_(segment_count), asked_(held_.words().size(), 0) {
    // Fisher-Yates over the identity permutation gives each segment a random rank.
    std::iota(by_rank_.begin(), by_rank_.end(), 0u);
    Rng rng(seed);
    for (std::uint32_t i = segment_count; i > 1; --i) std::swap(by_rank_[i - 1], by_rank_[rng.below(i)]);
    for (std::uint32_t i = 0; i < segment_count; ++i) rank_[by_rank_[i]] = i;
}

void Download::set_segment_bytes(std::uint32_t n) {
    segment_bytes_ = n ? n : 1;
    for (auto& p : peers_) p.pipe = pipeline(p);
}

// Rarest first, ties broken by the random rank: sorts (availability, rank)
// keys, which order the segments as comparing them would.
void Download::rank_order(std::vector<std::uint32_t>& segs) {
    keys_.clear();
    for (auto s : segs) keys_.push_back(std::uint64_t{availability_[s]} << 32 | rank_[s]);
    std::sort(keys_.begin(), keys_.end());
    for (std::size_t i = 0; i < keys_.size(); ++i) segs[i] = by_rank_[static_cast<std::uint32_t>(keys_[i])];
}

// Peers from index `from` on moved by `by` places: so do their requests' slots.
void Download::shift_slots(std::uint32_t from, int by) {
    for (auto& v : in_flight_)
        for (auto& f : v)
            if (f.slot >= from) f.slot = static_cast<std::uint32_t>(static_cast<int>(f.slot) + by);
}

namespace {
constexpr auto by_id = [](const auto& p, PeerId id) { return p.id < id; };
}  // namespace

Download::Peer* Download::find(PeerId peer) {
    return const_cast<Peer*>(std::as_const(*this).find(peer));
}

const Download::Peer* Download::find(PeerId peer) const {
    auto it = std::lower_bound(peers_.begin(), peers_.end(), peer, by_id);
    return it != peers_.end() && it->id == peer ? &*it : nullptr;
}

void Download::mark_held(std::uint32_t seg) {
    held_.set(seg);
    changed();
}

void Download::add_peer(PeerId peer, SourceClass cls, Millis now) {
    if (!started_) started_ = now;  // the rung delays count from the first holder met
    changed();
    auto it = std::lower_bound(peers_.begin(), peers_.end(), peer, by_id);
    if (it != peers_.end() && it->id == peer) {
        it->cls = cls;
        return;
    }
    Peer p;
    p.id = peer;
    p.cls = cls;
    p.have = Bitfield(held_.size());
    p.last_gain = now;  // a super-node met just now may be starting its download
    p.pipe = pipeline(p);
    auto at = static_cast<std::uint32_t>(it - peers_.begin());
    if (in_flight_total_) shift_slots(at, 1);
    peers_.insert(it, std::move(p));
}

void Download::forget_have(Peer& p) {
    if (p.banned) return;  // a banned peer's holdings were never counted
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        if (p.have.test(s)) --availability_[s];
}

void Download::remove_peer(PeerId peer) {
    Peer* p = find(peer);
    if (!p) return;
    changed();
    for (std::uint32_t s = 0; s < held_.size() && p->in_flight; ++s) drop_request(peer, s);
    forget_have(*p);
    auto at = static_cast<std::uint32_t>(p - peers_.data());
    peers_.erase(peers_.begin() + at);
    if (in_flight_total_) shift_slots(at + 1, -1);
}

void Download::peer_bitfield(PeerId peer, const Bitfield& have) {
    Peer* p = find(peer);
    if (!p || have.size() != held_.size()) return;
    forget_have(*p);
    p->have = have;
    if (p->banned) return;
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        if (have.test(s)) ++availability_[s];
}

void Download::peer_has(PeerId peer, std::uint32_t seg) {
    Peer* p = find(peer);
    if (!p || seg >= held_.size() || p->have.test(seg)) return;
    p->have.set(seg);
    if (!p->banned) ++availability_[seg];
}

bool Download::is_banned(PeerId peer) const {
    const Peer* p = find(peer);
    return p && p->banned;
}

bool Download::is_requested(PeerId peer, std::uint32_t seg) const {
    if (seg >= in_flight_.size()) return false;
    for (auto& f : in_flight_[seg])
        if (f.peer == peer) return true;
    return false;
}

void Download::requesters(std::uint32_t seg, std::vector<PeerId>& out) const {
    out.clear();
    if (seg >= in_flight_.size()) return;
    for (auto& f : in_flight_[seg]) out.push_back(f.peer);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

void Download::drop_request(PeerId peer, std::uint32_t seg) {
    auto& v = in_flight_[seg];
    for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->peer != peer) continue;
        --peers_[it->slot].in_flight;
        v.erase(it);
        if (v.empty()) asked_[seg / 64] &= ~(std::uint64_t{1} << (seg % 64));
        --in_flight_total_;
        changed();
        return;
    }
}

void Download::segment_done(PeerId peer, std::uint32_t seg, bool valid, std::vector<Action>& out) {
    if (seg >= held_.size()) return;
    changed();
    drop_request(peer, seg);
    if (!valid) {
        Peer* p = find(peer);
        if (!p || p->banned) return;
        forget_have(*p);
        p->banned = true;
        for (std::uint32_t s = 0; s < held_.size() && p->in_flight; ++s)
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

bool Download::peer_holds(PeerId peer, std::uint32_t seg) const {
    const Peer* p = find(peer);
    return p && p->have.test(seg);
}

void Download::withdraw(PeerId peer, std::uint32_t seg, std::vector<Action>& out) {
    if (!is_requested(peer, seg)) return;
    drop_request(peer, seg);
    out.push_back({Action::Cancel, peer, seg});
}

void Download::rejected(PeerId peer, std::uint32_t seg, RejectReason why, Millis now) {
    if (seg >= held_.size()) return;
    drop_request(peer, seg);
    Peer* found = find(peer);
    if (!found) return;
    Peer& p = *found;
    changed();
    switch (why) {
        case RejectReason::Busy: p.backoff_until = now + cfg_.busy_backoff; break;
        case RejectReason::NotHeld:
            if (p.have.test(seg)) {
                p.have.reset(seg);
                if (!p.banned) --availability_[seg];
            }
            break;
        case RejectReason::Later:
            if (p.have.test(seg)) {
                p.have.reset(seg);
                if (!p.banned) --availability_[seg];
                p.later.push_back({seg, now + cfg_.later_wait});
            }
            break;
        case RejectReason::Banned:
        case RejectReason::UnknownPatch: p.backoff_until = now + cfg_.stall_backoff; break;
    }
}

void Download::progress(PeerId peer, Millis now, std::uint64_t bytes) {
    Peer* found = find(peer);
    if (!found) return;
    Peer& p = *found;
    bool was_useful = useful(p);
    p.last_progress = now;
    if (bytes) sample(p, now, bytes);
    bool is_useful = useful(p);
    // Only requests' deadlines follow the holder's bytes, and only while it is useful.
    if (p.in_flight && (was_useful || is_useful)) revived(p, now, was_useful && is_useful);
}

// Bytes from `p` moved the deadlines of its requests to `now` + request_timeout
// and `now` + endgame_after. A known next deadline that came from elsewhere
// stays, unless one of those is earlier.
void Download::revived(const Peer& p, Millis now, bool steady) {
    auto slot = static_cast<std::uint32_t>(&p - peers_.data());
    if (!deadline_known_ || !steady || now < deadline_at_ || deadline_slot_ == slot) return changed();
    for (Millis t : {now + cfg_.request_timeout, now + cfg_.endgame_after})
        if (t > now && (!deadline_ || t < *deadline_)) {
            deadline_ = t;
            deadline_slot_ = slot;
        }
}

void Download::sample(Peer& p, Millis now, std::uint64_t bytes) {
    if (p.sample_bytes == 0) p.sample_start = now;
    p.sample_bytes += bytes;
    // A sample every quarter second or more of arrivals: bytes per ms, smoothed.
    if (now >= p.sample_start + 250) {
        double r = static_cast<double>(p.sample_bytes) / static_cast<double>(now - p.sample_start);
        p.rate = p.rate > 0 ? 0.5 * p.rate + 0.5 * r : r;
        p.sample_bytes = 0;
        p.pipe = pipeline(p);
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

// Whether holders of this rung may be asked now (a holder also must not be
// banned or backed off).
bool Download::rung_usable(int rung, Millis now) const {
    if (*started_ + cfg_.rung_delay[rung] > now) return false;
    if (cfg_.local_first && rung >= static_cast<int>(SourceClass::OtherDomain) && *started_ + cfg_.local_far_delay > now)
        return false;
    if (now < *started_ + cfg_.connect_wait)
        for (int r = 0; r < rung; ++r)
            if (connecting_[r] > 0) return false;
    return true;
}

// Within one pump(): usable_now is set by open_slots().
bool Download::can_ask(const Peer& p) const {
    return p.usable_now && p.in_flight < p.pipe && in_flight_total_ < cfg_.max_requests_total;
}

// Fixes each holder's usability for this pump() (nothing in it changes
// that, nor the pipeline depths), counts those with a free slot and what they hold
// between them (a segment none of them holds finds no holder in this call:
// slots only fill up). False: nobody can be asked.
bool Download::open_slots(Millis now) {
    open_ = 0;
    if (peers_.empty()) return false;
    askable_.assign(held_.words().size(), 0);
    std::array<bool, kSourceClasses> rung_open{};
    for (int r = 0; r < kSourceClasses; ++r) rung_open[r] = rung_usable(r, now);
    for (auto& p : peers_) {
        p.usable_now = !p.banned && p.backoff_until <= now && rung_open[static_cast<int>(p.cls)];
        if (!p.usable_now || p.in_flight >= p.pipe) continue;
        ++open_;
        auto w = p.have.words();
        for (std::size_t i = 0; i < w.size(); ++i) askable_[i] |= w[i];
    }
    return slots_left();
}

// The nearest rung any copy of `seg` was asked of (endgame duplicates stay on it or nearer).
int Download::asked_rung(std::uint32_t seg) const {
    int asked = kSourceClasses;
    for (auto& f : in_flight_[seg])
        asked = std::min(asked, static_cast<int>(peers_[f.slot].cls));
    return asked;
}

Download::Peer* Download::pick_holder(std::uint32_t seg, bool endgame) {
    // The nearest rung with a usable holder of this segment. Full pipelines do
    // not send us down the ladder (the request waits for a slot); only holders
    // that are busy, stalled or banned do. On that rung, the least loaded
    // holder with a free slot (the first by id among equals).
    int rung = kSourceClasses;
    Peer* best = nullptr;
    for (auto& p : peers_) {
        if (!p.usable_now || !p.have.test(seg)) continue;
        int cls = static_cast<int>(p.cls);
        if (cls > rung || (endgame && is_requested(p.id, seg))) continue;
        if (cls < rung) {
            rung = cls;
            best = nullptr;
        }
        if (can_ask(p) && (!best || p.in_flight < best->in_flight)) best = &p;
    }
    // A duplicate never goes farther down the ladder than the request it
    // doubles: a slow cache must not turn into traffic between domains.
    if (endgame && best && rung > asked_rung(seg)) return nullptr;
    return best;
}

void Download::request(Peer& p, std::uint32_t seg, Millis now, std::vector<Action>& out) {
    in_flight_[seg].push_back({p.id, now, static_cast<std::uint32_t>(&p - peers_.data())});
    asked_[seg / 64] |= std::uint64_t{1} << (seg % 64);
    ++in_flight_total_;
    if (++p.in_flight == p.pipe && p.usable_now) --open_;
    changed();
    out.push_back({Action::Request, p.id, seg});
}

// Segments a holder answered Later for become askable of it again.
void Download::restore_later(Millis now) {
    for (auto& p : peers_) {
        if (p.later.empty()) continue;
        std::erase_if(p.later, [&](const std::pair<std::uint32_t, Millis>& l) {
            if (l.second > now) return false;
            if (!p.have.test(l.first)) {
                p.have.set(l.first);
                if (!p.banned) ++availability_[l.first];
                changed();
            }
            return true;
        });
    }
}

void Download::pump(Millis now, std::vector<Action>& out) {
    if (held_.all()) return;
    restore_later(now);
    if (!open_slots(now)) return;

    // Segments nobody is fetching (that a holder with a free slot has),
    // rarest first, random tie-break.
    scratch_.clear();
    auto held = held_.words();
    for (std::size_t i = 0; i < held.size(); ++i)
        for (std::uint64_t w = askable_[i] & ~held[i] & ~asked_[i]; w; w &= w - 1) {
            auto s = static_cast<std::uint32_t>(i * 64 + std::countr_zero(w));
            if (availability_[s] > 0) scratch_.push_back(s);
        }
    rank_order(scratch_);
    auto local_in_flight = [&] {
        std::uint32_t n = 0;
        for (auto& p : peers_)
            if (p.cls == SourceClass::SameDomainPeer || p.cls == SourceClass::SameDomainSuper) n += p.in_flight;
        return n;
    };
    std::uint32_t local = cfg_.local_first ? local_in_flight() : 0;
    // A same-domain super-node that is still downloading and progressing counts
    // as "something comes from the domain": it will soon hold what we lack.
    if (cfg_.local_first)
        for (auto& p : peers_) {
            if (p.cls != SourceClass::SameDomainSuper) continue;
            std::uint32_t n = p.have.count();
            if (n != p.seen_count) {
                p.seen_count = n;
                p.last_gain = now;
                changed();
            }
            if (p.banned) continue;
            if (p.usable_now && n < held_.size() && now < p.last_gain + cfg_.local_super_wait) ++local;
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
            if (!slots_left()) break;  // the rest would find nobody to ask
            if (!in_flight_[s].empty()) continue;  // asked for in the first pass
            Peer* p = pick_holder(s, false);
            if (!p) continue;
            bool far = p->cls == SourceClass::OtherDomain || p->cls == SourceClass::Origin;
            if (pass == 0 && far && !(share_ && share_->test(s))) continue;
            request(*p, s, now, out);
            local += !far;
        }
    }

    // Endgame: every missing segment is on its way; ask a second holder for the
    // ones that have been waiting a while.
    if (!slots_left()) return;
    scratch_.clear();
    for (std::uint32_t s = 0; s < held_.size(); ++s) {
        if (held_.test(s)) continue;
        if (in_flight_[s].empty()) return;  // not endgame yet
        if (in_flight_[s].size() < cfg_.max_requests_per_segment_endgame && quiet_since(in_flight_[s].front()) + cfg_.endgame_after <= now)
            scratch_.push_back(s);
    }
    rank_order(scratch_);
    for (auto s : scratch_)
        if (Peer* p = pick_holder(s, true)) request(*p, s, now, out);
}

double Download::rate_of(PeerId peer) const {
    const Peer* p = find(peer);
    return p ? p->rate * 1000.0 : 0.0;
}

std::uint32_t Download::share_left() const {
    if (!share_) return 0;
    std::uint32_t n = 0;
    auto sh = share_->words();
    auto held = held_.words();
    for (std::size_t i = 0; i < sh.size(); ++i) n += static_cast<std::uint32_t>(std::popcount(sh[i] & ~held[i]));
    return n;
}

bool Download::held_nearby(std::uint32_t seg) const {
    if (seg >= held_.size()) return false;
    for (auto& p : peers_)
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
    const Peer& p = peers_[f.slot];
    if (!useful(p)) return f.since;
    return std::max(f.since, p.last_progress);
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
            peers_[v[i].slot].backoff_until = now + cfg_.stall_backoff;
            drop_request(peer, s);  // erases v[i]
            out.push_back({Action::Cancel, peer, s});
        }
    }
}

// The earliest candidate later than `now`. A candidate set that has not
// changed since the last answer keeps that answer while it lies ahead: the
// earliest candidate later than an earlier time, if still later than `now`,
// is also the earliest later than `now`.
std::optional<Millis> Download::next_deadline(Millis now) const {
    if (held_.all() || !started_) return std::nullopt;
    if (deadline_known_ && now >= deadline_at_ && (!deadline_ || *deadline_ > now)) return deadline_;
    deadline_ = compute_deadline(now);
    deadline_at_ = now;
    deadline_known_ = true;
    return deadline_;
}

// Also notes whose request the answer came from (deadline_slot_).
std::optional<Millis> Download::compute_deadline(Millis now) const {
    std::optional<Millis> best;
    auto consider = [&](Millis t, std::uint32_t from = kNoSlot) {
        if (t <= now || (best && t >= *best)) return;
        best = t;
        deadline_slot_ = from;
    };
    deadline_slot_ = kNoSlot;
    for (std::uint32_t s = 0; s < held_.size(); ++s)
        for (auto& f : in_flight_[s]) {
            Millis alive = quiet_since(f);
            consider(alive + cfg_.request_timeout, f.slot);
            consider(alive + cfg_.endgame_after, f.slot);
        }
    for (auto& p : peers_) {
        consider(p.backoff_until);
        for (auto& l : p.later) consider(l.second);
        if (p.cls == SourceClass::SameDomainSuper) consider(p.last_gain + cfg_.local_super_wait);
    }
    for (auto d : cfg_.rung_delay) consider(*started_ + d);
    consider(*started_ + cfg_.connect_wait);
    if (cfg_.local_first) consider(*started_ + cfg_.local_far_delay);
    return best;
}

}  // namespace ps::core
