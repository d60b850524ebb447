#include "core/engine.hpp"

#include <algorithm>

namespace ps::core {

Engine::Engine(EngineConfig cfg, std::uint64_t seed) : cfg_(std::move(cfg)), rng_(seed) {
    cfg_.download.local_first = cfg_.role == Role::Peer;  // devices spare the links between domains
    uploads_.set_config(cfg_.uploads);
    set_rates(Instant{0}, cfg_.upload_rate, cfg_.download_rate);
}

void Engine::set_rates(Instant now, std::uint64_t upload, std::uint64_t download) {
    // A burst of a quarter second, but at least one segment, so a segment can always go.
    auto burst = [](std::uint64_t rate) { return std::max<std::uint64_t>(rate / 4, 1u << 20); };
    uploads_.set_rate(now.ms, upload, burst(upload));
    download_bucket_.set_rate(now.ms, download, burst(download));
    cfg_.upload_rate = upload;
    cfg_.download_rate = download;
}

void Engine::set_upload_slots(std::uint32_t slots) {
    cfg_.uploads.slots = slots;
    uploads_.set_config(cfg_.uploads);
}

Engine::Patch* Engine::patch(const PatchId& p) {
    auto it = patches_.find(p);
    return it == patches_.end() ? nullptr : &it->second;
}

Engine::Conn* Engine::conn(ConnId c) {
    auto it = conns_.find(c);
    return it == conns_.end() ? nullptr : &it->second;
}

std::optional<PeerIdentity> Engine::peer(ConnId c) const {
    auto it = conns_.find(c);
    if (it == conns_.end()) return std::nullopt;
    return it->second.who;
}

SourceClass Engine::classify_holder(Role role, const std::string& domain) const {
    return classify(cfg_.domain, domain, role);
}

const PatchStats* Engine::stats(const PatchId& p) const {
    auto it = patches_.find(p);
    return it == patches_.end() ? nullptr : &it->second.stats;
}
const Bitfield* Engine::held(const PatchId& p) const {
    auto it = patches_.find(p);
    return it == patches_.end() ? nullptr : &it->second.held;
}
bool Engine::downloading(const PatchId& p) const {
    auto it = patches_.find(p);
    return it != patches_.end() && it->second.dl.has_value();
}
bool Engine::paused(const PatchId& p) const {
    auto it = patches_.find(p);
    return it != patches_.end() && it->second.paused;
}
Millis Engine::last_served(const PatchId& p) const {
    auto it = patches_.find(p);
    return it == patches_.end() ? 0 : it->second.last_served;
}

// ---- patches ----

void Engine::add_patch(const PatchId& id, PatchShape shape, const Bitfield& held, bool download, Instant now) {
    if (patches_.count(id)) return;
    Patch s;
    s.shape = shape;
    s.index = static_cast<std::uint32_t>(by_index_.size());
    s.held = held;
    s.stats.started_ms = now.ms;
    if (download) {
        s.dl.emplace(shape.segments, cfg_.download, rng_.next());
        s.dl->set_segment_bytes(shape.segment_size);
        for (std::uint32_t i = 0; i < shape.segments; ++i)
            if (held.test(i)) s.dl->mark_held(i);
        if (cfg_.role == Role::Super && cfg_.coordinate_imports) s.shares.emplace(shape.segments, cfg_.import_stall);
    }
    // The origin, and super-nodes toward their domain's devices, hand a
    // segment out once per reserve period: the devices make the further
    // copies, and the uplink is left for what only this node can send.
    if ((cfg_.role == Role::Origin && !download) || (cfg_.role == Role::Super && cfg_.super_superseed))
        s.superseed.emplace(shape.segments, cfg_.role == Role::Origin ? cfg_.origin_reserve : cfg_.superseed_reserve);
    if (cfg_.role == Role::Peer && cfg_.peer_pace > 0) s.paced.emplace(shape.segments, cfg_.peer_pace);
    by_index_.push_back(id);
    Patch& sw = patches_[id] = std::move(s);
    for (auto& [c, k] : conns_) send_have(c, k, id, sw);
    if (sw.held.count() > 0) announce(id, sw, now);
    if (sw.dl && sw.dl->complete()) {
        sw.completed = true;
        sw.stats.completed_ms = now.ms;
        out_.push_back(act::Completed{id});
    } else if (sw.dl) {
        lookup(id, sw, now);
    }
}

void Engine::remove_patch(const PatchId& id) {
    Patch* s = patch(id);
    if (!s) return;
    for (auto& [c, k] : conns_) {
        k.told.erase(id);
        k.heard.erase(id);
        if (s->dl)
            for (std::uint32_t seg = 0; seg < s->dl->segment_count(); ++seg)
                if (s->dl->is_requested(raw(c), seg)) out_.push_back(act::SendCancel{c, id, Segment{seg}});
    }
    // Requests queued with us for it are dropped as their turn comes (no patch).
    by_index_[s->index] = PatchId{};  // the index is never reused
    patches_.erase(id);
}

bool Engine::pause(const PatchId& id) {
    Patch* s = patch(id);
    if (!s || !s->dl || s->dl->complete()) return false;
    s->paused = true;
    return true;
}

void Engine::resume(const PatchId& id, Instant now) {
    Patch* s = patch(id);
    if (!s) return;
    s->paused = false;
    pump_requests(id, *s, now);
}

// ---- connections ----

bool Engine::conn_up(ConnId c, const PeerIdentity& who, bool we_dialed, Instant now) {
    dialing_.erase(who.key);
    if (auto dup = by_key_.find(who.key); dup != by_key_.end()) {
        // Two connections between the same pair (both dialed at once): keep the
        // one dialed by the smaller key, so that both ends make the same choice.
        const NodeKey& new_dialer = we_dialed ? cfg_.self : who.key;
        const NodeKey& old_dialer = conns_.at(dup->second).we_dialed ? cfg_.self : who.key;
        if (!(new_dialer < old_dialer)) {
            tell_connecting_all();
            closing(c, CloseWhy::Duplicate, "duplicate connection");
            return false;
        }
        ConnId old = dup->second;
        by_key_.erase(dup);
        closing(old, CloseWhy::Duplicate, "duplicate connection");
    }
    auto [slot, fresh] = conns_.try_emplace(c);
    Conn& k = slot->second;
    if (!fresh) count_conn(k.who, -1);
    k.who = who;
    count_conn(who, +1);
    k.cls = classify_holder(who.role, who.domain);
    k.we_dialed = we_dialed;
    by_key_[who.key] = c;
    tell_connecting_all();
    for (auto& [id, s] : patches_) send_have(c, k, id, s);
    for (auto& [id, s] : patches_) pump_requests(id, s, now);
    return true;
}

// Forgets a connection: nothing more it says counts, its requests go elsewhere.
bool Engine::forget_conn(ConnId c) {
    auto it = conns_.find(c);
    if (it == conns_.end()) return false;
    auto bk = by_key_.find(it->second.who.key);
    if (bk != by_key_.end() && bk->second == c) by_key_.erase(bk);
    for (auto& [id, s] : patches_) {
        if (s.dl) s.dl->remove_peer(raw(c));
        std::erase_if(s.partial, [c](auto& e) { return e.first.first == c; });
    }
    uploads_.peer_gone(raw(c));
    assigner_gone(c);
    buffered_ -= it->second.queued + it->second.reading;
    count_conn(it->second.who, -1);
    conns_.erase(it);
    return true;
}

void Engine::count_conn(const PeerIdentity& who, int by) {
    if (who.role == Role::Peer && who.domain == cfg_.domain) own_devices_ += static_cast<std::uint64_t>(by);
    if (who.role != Role::Super) return;
    auto [it, fresh] = supers_by_domain_.try_emplace(who.domain, 0);
    it->second += static_cast<std::uint32_t>(by);
    if (it->second == 0) supers_by_domain_.erase(it);
}

void Engine::closing(ConnId c, CloseWhy why, std::string reason) {
    out_.push_back(act::Close{c, why, std::move(reason)});
    forget_conn(c);  // conn_down() follows
}

void Engine::conn_down(ConnId c, Instant now) {
    if (!forget_conn(c)) return;
    tell_connecting_all();
    coordinate_all(now);
    for (auto& [id, s] : patches_) pump_requests(id, s, now);
}

void Engine::dial_failed(const NodeKey& key, Instant now) {
    if (!dialing_.erase(key)) return;
    tell_connecting_all();
    for (auto& [id, s] : patches_) pump_requests(id, s, now);
}

bool Engine::may_dial(const NodeKey& key) const {
    return key != cfg_.self && !by_key_.count(key) && !dialing_.count(key) &&
           by_key_.size() + dialing_.size() < cfg_.max_peers;
}

void Engine::note_dial(const Holder& h) {
    dialing_[h.key] = classify_holder(h.role, h.domain);
    tell_connecting_all();
}

void Engine::dial(const Holder& h) {
    note_dial(h);
    out_.push_back(act::Dial{h});
}

void Engine::set_queued(Conn& k, std::uint64_t queued) {
    buffered_ = buffered_ - k.queued + queued;
    k.queued = queued;
}

// Windows of at least a second: bytes that left the buffers over the last
// whole window, per ms.
void Engine::sample_drain(Millis now) {
    std::uint64_t drained = handed_ - std::min(handed_, buffered_);
    if (drain_at_ == 0 || now < drain_at_ + 1'000) {
        if (drain_at_ == 0) drain_at_ = std::max<Millis>(now, 1), drained_at_ = drained;
        return;
    }
    drain_rate_ = static_cast<double>(drained - drained_at_) / static_cast<double>(now - drain_at_);
    drain_at_ = now;
    drained_at_ = drained;
}

Millis Engine::pace_for(const Patch& s) const {
    if (drain_rate_ <= 0) return cfg_.peer_pace;
    auto ms = static_cast<Millis>(1.5 * static_cast<double>(s.shape.segment_size) / drain_rate_);
    return std::min(cfg_.peer_pace, ms);
}

void Engine::writable(ConnId c, std::uint64_t queued, Instant now) {
    if (Conn* k = conn(c)) set_queued(*k, queued);
    pump_uploads(now);
}

void Engine::send_have(ConnId c, Conn& k, const PatchId& id, Patch& s) {
    if (!k.told.insert(id)) return;
    out_.push_back(act::SendHave{c, id, s.held.to_bytes()});
}

// The download holds farther rungs back while nearer holders are still connecting.
void Engine::tell_connecting(Patch& s) {
    if (!s.dl) return;
    std::array<std::uint32_t, kSourceClasses> n{};
    for (auto& [key, cls] : dialing_) ++n[static_cast<int>(cls)];
    // Until the first lookup of the own domain's key has answered, its holders
    // count as on their way: the cross-domain answer often comes first, and
    // other domains must not be asked before the own domain was (at most
    // DownloadConfig::connect_wait).
    if (s.domain_lookup_pending) ++n[static_cast<int>(SourceClass::SameDomainPeer)];
    s.dl->set_connecting(n);
}

void Engine::tell_connecting_all() {
    for (auto& [id, s] : patches_) tell_connecting(s);
}

// ---- messages ----

void Engine::on_have(ConnId c, const PatchId& p, ByteView bits, Instant now) {
    Conn* k = conn(c);
    Patch* s = patch(p);
    if (!k || !s) return;
    // Answer a peer's first Have with ours, even if we sent one before it took
    // part in this patch (it ignored that one).
    if (k->heard.insert(p)) k->told.erase(p);
    send_have(c, *k, p, *s);
    auto bf = Bitfield::from_bytes(bits, s->shape.segments);
    if (!bf) return closing(c, CloseWhy::ProtocolViolation, "have: bitfield does not fit the manifest");
    if (bf->all()) k->full.insert(p);  // a seed needs no news of what we gain
    if (!s->dl || s->dl->complete()) return;
    // A node banned for this patch is never asked again, whatever connection it comes back on.
    if (s->stats.banned.count(k->who.key)) return;
    s->dl->add_peer(raw(c), k->cls, now.ms);
    s->dl->peer_bitfield(raw(c), *bf);
    if (s->shares && k->who.domain == cfg_.domain) coordinate(p, *s, now);  // a member joined
    pump_requests(p, *s, now);
}

void Engine::on_have_one(ConnId c, const PatchId& p, Segment seg, Instant now) {
    Conn* k = conn(c);
    Patch* s = patch(p);
    if (!k || !s || !s->dl || s->dl->complete()) return;
    if (idx(seg) >= s->dl->segment_count()) return closing(c, CloseWhy::ProtocolViolation, "have-one: segment out of range");
    s->dl->peer_has(raw(c), idx(seg));
    if (k->cls <= SourceClass::SameDomainSuper) prefer_nearby(p, *s, idx(seg));
    pump_requests(p, *s, now);
}

void Engine::on_request(ConnId c, const PatchId& p, Segment seg, Instant now) {
    Conn* k = conn(c);
    if (!k) return;
    Patch* s = patch(p);
    auto reject = [&](RejectReason r) { out_.push_back(act::SendReject{c, p, seg, r}); };
    if (!s) return reject(RejectReason::UnknownPatch);
    if (cfg_.fault_ignore_requests) return;
    bool held = s->held.test(idx(seg));
    // A super-node's super-seeding spares a busy uplink; an idle one serves
    // whatever is asked (on a fast link the copy is through before anyone
    // could pass it on), and so does one whose uplink outruns all its
    // devices together. The origin always spares its uplink.
    bool uplink_busy = cfg_.role == Role::Origin || (buffered() > 0 && !outruns_devices());
    SuperSeeding* reserve = held && uplink_busy ? reserve_of(*s, *k, false) : nullptr;
    if (reserve && !reserve->allow(idx(seg), now.ms)) return reject(RejectReason::Busy);
    // A device paces a segment toward its own domain (peer_pace).
    bool pace = s->paced && held && k->who.domain == cfg_.domain;
    if (pace) sample_drain(now.ms);
    if (pace && buffered() >= s->shape.segment_size && !s->paced->allow(idx(seg), now.ms, pace_for(*s)))
        return reject(RejectReason::Later);
    bool banned = s->stats.banned.count(k->who.key) != 0;
    bool priority = k->who.role == Role::Super;
    switch (uploads_.request(raw(c), cookie(*s, idx(seg)), held, banned, priority)) {
        case Uploads::Verdict::Queued:
            if (pace) s->paced->served(idx(seg), now.ms);
            // The copy is promised now: a second request for the segment
            // while this one waits in the queue is refused as if it were out
            // (marked again when it goes out; pump_uploads).
            if (SuperSeeding* r = reserve_of(*s, *k, true)) r->served(idx(seg), now.ms);
            s->last_served = now.ms;  // a cache must not evict what peers are downloading
            return pump_uploads(now);
        case Uploads::Verdict::Busy: return reject(RejectReason::Busy);
        case Uploads::Verdict::NotHeld: return reject(RejectReason::NotHeld);
        case Uploads::Verdict::Banned: return reject(RejectReason::Banned);
        case Uploads::Verdict::Paused: ++refused_by_policy_; return reject(RejectReason::Busy);
    }
}

void Engine::set_uploads_refused(bool refused) {
    for (auto& item : uploads_.set_paused(refused)) {
        auto pi = static_cast<std::uint32_t>(item.what >> 32);
        if (pi >= by_index_.size() || !patch(by_index_[pi])) continue;
        ++refused_by_policy_;
        out_.push_back(act::SendReject{ConnId{item.peer}, by_index_[pi], Segment{static_cast<std::uint32_t>(item.what)},
                                       RejectReason::Busy});
    }
}

void Engine::on_cancel(ConnId c, const PatchId& p, Segment seg) {
    if (Patch* s = patch(p)) uploads_.cancel(raw(c), cookie(*s, idx(seg)));
}

void Engine::on_reject(ConnId c, const PatchId& p, Segment seg, std::uint8_t reason, Instant now) {
    Conn* k = conn(c);
    Patch* s = patch(p);
    if (!k || !s || !s->dl) return;
    if (reason < 1 || reason > 5) return closing(c, CloseWhy::ProtocolViolation, "reject: unknown reason");
    s->partial.erase({c, idx(seg)});
    if (reason == std::uint8_t(RejectReason::Busy)) ++s->stats.busy_from[static_cast<int>(k->cls)];
    s->dl->rejected(raw(c), idx(seg), static_cast<RejectReason>(reason), now.ms);
    pump_requests(p, *s, now);
}

DataVerdict Engine::on_data(ConnId c, const PatchId& p, Segment seg, std::uint32_t offset, std::uint32_t len,
                            Instant now) {
    Conn* k = conn(c);
    Patch* s = patch(p);
    // Only bytes we asked this peer for; late chunks of a cancelled request are dropped.
    if (!k || !s || !s->dl || !s->dl->is_requested(raw(c), idx(seg)) || s->storing.count({c, idx(seg)})) {
        if (k && s) s->stats.wasted_from[static_cast<int>(k->cls)] += len;
        return DataVerdict::Drop;
    }
    auto& got = s->partial[{c, idx(seg)}];
    std::uint32_t whole = s->shape.length(idx(seg));
    if (offset != got || std::uint64_t{got} + len > whole) {
        s->partial.erase({c, idx(seg)});
        closing(c, CloseWhy::ProtocolViolation, "data: chunk out of order or past the segment's end");
        return DataVerdict::Violation;
    }
    got += len;
    s->stats.bytes_from[static_cast<int>(k->cls)] += len;
    download_bucket_.spend(now.ms, len);
    s->dl->progress(raw(c), now.ms, len);
    if (got < whole) return DataVerdict::Take;
    s->partial.erase({c, idx(seg)});
    s->storing[{c, idx(seg)}] = k->who.key;
    out_.push_back(act::Store{c, p, seg});
    return DataVerdict::TakeLast;
}

// ---- results ----

void Engine::stored(ConnId from, const PatchId& p, Segment seg, StoreOutcome outcome, Instant now) {
    Patch* s = patch(p);
    if (!s) return;
    auto st = s->storing.find({from, idx(seg)});
    if (st == s->storing.end() || !s->dl) return;
    NodeKey sender = st->second;  // the connection may be gone by now
    s->storing.erase(st);
    std::uint32_t i = idx(seg);
    steps_.clear();
    switch (outcome) {
        case StoreOutcome::BadHash: {
            ++s->stats.segments_rejected;
            s->stats.banned.insert(sender);
            out_.push_back(act::Banned{p, sender, seg});
            s->dl->segment_done(raw(from), i, false, steps_);
            break;
        }
        case StoreOutcome::IoError: s->dl->rejected(raw(from), i, RejectReason::Busy, now.ms); break;  // ask again later
        case StoreOutcome::Stored: {
            bool fresh = !s->held.test(i);
            s->held.set(i);
            s->dl->segment_done(raw(from), i, true, steps_);
            if (!fresh) break;
            ++s->stats.segments_verified;
            s->stats.bytes_downloaded += s->shape.length(i);
            // A peer that holds the segment itself needs no word of ours.
            for (auto& [c, k] : conns_)
                if (k.told.count(p) && !k.full.count(p) && !s->dl->peer_holds(raw(c), i))
                    out_.push_back(act::SendHaveOne{c, p, seg});
            break;
        }
    }
    run_steps(p, *s, steps_);
    pump_requests(p, *s, now);
    if (!s->announced && s->held.count() > 0) announce(p, *s, now);
    if (s->dl->complete() && !s->completed) {
        s->completed = true;
        s->stats.completed_ms = now.ms;
        announce(p, *s, now);
        out_.push_back(act::Completed{p});
    }
}

void Engine::served(ConnId c, const PatchId& p, Segment seg, std::uint64_t queued, Instant now) {
    serve_done(c, p, seg);
    if (Conn* k = conn(c)) set_queued(*k, queued);
    pump_uploads(now);
}

void Engine::serve_failed(ConnId c, const PatchId& p, Segment seg, Instant now) {
    if (Patch* s = patch(p)) s->held.reset(idx(seg));
    serve_done(c, p, seg);
    if (conn(c)) out_.push_back(act::SendReject{c, p, seg, RejectReason::NotHeld});
    pump_uploads(now);
}

void Engine::serve_done(ConnId c, const PatchId& p, Segment seg) {
    Conn* k = conn(c);
    if (!k) return;
    auto it = k->serving.find({p, idx(seg)});
    if (it == k->serving.end()) return;
    // The same segment may be queued more than once: count one of them.
    Patch* s = patch(p);
    std::uint32_t len = std::min(it->second, s ? s->shape.length(idx(seg)) : it->second);
    std::uint64_t done = std::min<std::uint64_t>(k->reading, len);
    k->reading -= done;
    buffered_ -= done;
    if ((it->second -= len) == 0) k->serving.erase(it);
}

void Engine::holders_found(const PatchId& p, std::span<const Holder> holders, bool own_domain, Instant now) {
    Patch* s = patch(p);
    if (s && own_domain) {
        s->domain_looked_up = true;
        s->domain_lookup_pending = false;
    }
    if (!s || !s->dl || s->dl->complete()) return;
    std::size_t fresh = 0;
    for (auto& h : holders) {
        if (!may_dial(h.key)) {
            if (by_key_.size() + dialing_.size() >= cfg_.max_peers) break;
            continue;
        }
        dial(h);
        fresh += h.domain == cfg_.domain;
    }
    // A lookup that found new holders of the own domain starts the back-off
    // over: in a crowd, holders announce themselves one after another, and a
    // device that met only its super-node and the origin must not wait a
    // minute to meet the peers it is meant to fetch from.
    if (fresh > 0 && !s->paused) {
        s->lookup_gap = 0;
        Millis jitter = cfg_.lookup_interval / 4;
        Millis gap = cfg_.lookup_interval - jitter + (jitter ? rng_.below(2 * jitter + 1) : 0);
        s->next_lookup = std::min(s->next_lookup, now.ms + std::max<Millis>(gap, 1));
    }
    tell_connecting(*s);
    pump_requests(p, *s, now);
}

// A device that is downloading connects to its domain's super-nodes it knows
// of, whether or not its holder lookup found them: a fresh DHT node's first
// lookups often miss records, and without its super-node a device would fetch
// from other domains. Dialing counts as "nearer holders on their way".
void Engine::domain_supers(std::span<const Holder> supers, Instant) {
    supers_.assign(supers.begin(), supers.end());
    dial_domain_supers();
}

void Engine::dial_domain_supers() {
    if (cfg_.role != Role::Peer) return;
    bool any = false;
    for (auto& [id, s] : patches_) any |= wants_downloading(s);
    if (!any) return;
    for (auto& h : supers_) {
        if (h.role != Role::Super || h.domain != cfg_.domain) continue;
        if (by_key_.size() + dialing_.size() >= cfg_.max_peers) break;
        if (may_dial(h.key)) dial(h);
    }
}

// ---- requests ----

void Engine::run_steps(const PatchId& id, Patch& s, std::vector<Action>& steps) {
    for (auto& a : steps) {
        ConnId c{a.peer};
        Conn* k = conn(c);
        if (!k) continue;
        if (a.kind == Action::Request) {
            out_.push_back(act::SendRequest{c, id, Segment{a.segment}, k->cls});
        } else {
            s.partial.erase({c, a.segment});
            out_.push_back(act::SendCancel{c, id, Segment{a.segment}});
        }
    }
    steps.clear();
}

void Engine::pump_requests(const PatchId& id, Patch& s, Instant now) {
    if (!wants_downloading(s)) return;
    if (!download_bucket_.ready(now.ms)) return;  // tick() tries again
    // Under a download limit, keep about one second's worth of segments asked
    // for: what is requested arrives at the holder's speed, whatever the bucket says.
    std::uint64_t cap = cfg_.download.max_requests_total;
    if (cfg_.download_rate && s.shape.segment_size)
        cap = std::clamp<std::uint64_t>(cfg_.download_rate / s.shape.segment_size, 1, cap);
    s.dl->set_max_requests_total(static_cast<std::uint32_t>(cap));
    steps_.clear();
    s.dl->pump(now.ms, steps_);
    run_steps(id, s, steps_);
}

// ---- uploads ----

void Engine::pump_uploads(Instant now) {
    std::uint64_t total = buffered();
    auto ok = [&](PeerId p) {
        if (total >= cfg_.upload_buffer) return false;
        auto it = conns_.find(ConnId{p});
        return it != conns_.end() && it->second.queued + it->second.reading < cfg_.conn_high_water;
    };
    while (auto item = uploads_.next(now.ms, ok)) {
        auto pi = static_cast<std::uint32_t>(item->what >> 32);
        auto seg = static_cast<std::uint32_t>(item->what);
        Patch* s = pi < by_index_.size() ? patch(by_index_[pi]) : nullptr;
        if (!s) continue;
        ConnId c{item->peer};
        std::uint32_t len = s->shape.length(seg);
        Conn& k = conns_.at(c);
        k.reading += len;
        buffered_ += len;
        k.serving[{by_index_[pi], seg}] += len;
        handed_ += len;
        total += len;
        out_.push_back(act::Serve{c, by_index_[pi], Segment{seg}, len});
        uploads_.sent(now.ms, len);
        if (SuperSeeding* reserve = reserve_of(*s, k, true)) reserve->served(seg, now.ms);
        if (s->paced && k.who.domain == cfg_.domain) s->paced->served(seg, now.ms);
        s->stats.bytes_uploaded += len;
        s->last_served = now.ms;
    }
}

// ---- discovery ----

std::uint64_t Engine::lookups(const PatchId& p) const {
    auto it = patches_.find(p);
    return it == patches_.end() ? 0 : it->second.lookups;
}

Engine::LookupView Engine::lookup_view(const PatchId& p) const {
    LookupView v;
    auto it = patches_.find(p);
    if (it == patches_.end()) return v;
    const Patch& s = it->second;
    v.lookups = s.lookups;
    v.next_lookup = wants_downloading(s) ? s.next_lookup : 0;
    if (s.dl)
        for (auto& [c, k] : conns_) v.holders += s.dl->has_peer(raw(c)) ? 1 : 0;
    return v;
}

void Engine::lookup(const PatchId& id, Patch& s, Instant now) {
    // Back off while holders are connected; look again soon when none is.
    bool have_holders = false;
    if (s.dl)
        for (auto& [c, k] : conns_) have_holders |= s.dl->has_peer(raw(c));
    s.lookup_gap = have_holders ? std::min(cfg_.lookup_interval_max, std::max(cfg_.lookup_interval, s.lookup_gap * 2))
                                : cfg_.lookup_interval;
    Millis jitter = s.lookup_gap / 4;
    Millis gap = s.lookup_gap - jitter + (jitter ? rng_.below(2 * jitter + 1) : 0);
    s.next_lookup = now.ms + std::max<Millis>(gap, 1);
    ++s.lookups;
    if (!s.domain_looked_up) s.domain_lookup_pending = true;
    tell_connecting(s);
    dial_domain_supers();
    bool far = cfg_.role == Role::Peer && s.dl && s.dl->share_left() > 0;
    if (far) s.last_far_lookup = now.ms;
    out_.push_back(act::Lookup{id, far});
}

void Engine::announce(const PatchId& id, Patch& s, Instant now) {
    s.announced = true;
    s.announced_held = s.held.count();
    s.last_announce = now.ms;
    out_.push_back(act::Announce{id, s.announced_held, s.held.size()});
}

// ---- time ----

void Engine::tick(Instant now) {
    for (auto& [id, s] : patches_) {
        if (s.dl && !s.dl->complete()) {
            steps_.clear();
            s.dl->expire(now.ms, steps_);
            run_steps(id, s, steps_);
            pump_requests(id, s, now);
            if (now.ms >= s.next_lookup && !s.paused) lookup(id, s, now);
            if (s.shares && now.ms >= s.next_coordinate) coordinate(id, s, now);
        }
        // Refresh the record when what we hold changed, and well before readers
        // consider it stale.
        std::uint32_t held = s.held.count();
        bool changed = held != s.announced_held && now.ms >= s.last_announce + cfg_.announce_min_interval;
        bool aging = s.announced && now.ms >= s.last_announce + cfg_.announce_refresh;
        if (held > 0 && (changed || aging)) announce(id, s, now);
    }
    pump_uploads(now);  // sends held back by the rate limit
}

std::optional<Instant> Engine::next_deadline(Instant now) {
    std::optional<Millis> best;
    auto consider = [&](Millis t) {
        if (!best || t < *best) best = t;
    };
    for (auto& [id, s] : patches_) {
        if (s.dl && !s.dl->complete() && !s.paused) {
            if (auto t = s.dl->next_deadline(now.ms)) consider(*t);
            consider(s.next_lookup);
            if (s.shares && s.dl->coordinated()) consider(s.next_coordinate);
            if (auto w = download_bucket_.wait(now.ms); w > 0) consider(now.ms + w);
        }
        std::uint32_t held = s.held.count();
        if (held > 0 && held != s.announced_held) consider(s.last_announce + cfg_.announce_min_interval);
        if (s.announced) consider(s.last_announce + cfg_.announce_refresh);
    }
    // Queued uploads held back by the rate limit; those held back by a full
    // connection go on at writable().
    if (uploads_.active_peers() > 0)
        if (auto w = uploads_.wait(now.ms); w > 0) consider(now.ms + w);
    if (!best) return std::nullopt;
    return Instant{std::max(*best, now.ms)};
}

}  // namespace ps::core
