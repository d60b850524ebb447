// The engine's part in a domain's coordinated import (core/import_shares.hpp):
// a super-node deciding and sending its devices' shares, a device taking its
// share from its super-node.
#include "core/engine.hpp"

#include <algorithm>

namespace ps::core {

void Engine::coordinate(const PatchId& id, Patch& s, Instant now) {
    if (!s.shares || !wants_downloading(s)) return;
    s.next_coordinate = now.ms + cfg_.coordinate_interval;
    std::vector<NodeKey> members{cfg_.self};
    std::vector<ConnId> member_conns;
    for (auto& [c, k] : conns_)
        if (k.who.role == Role::Peer && k.who.domain == cfg_.domain && k.heard.count(id) && !k.full.count(id)) {
            members.push_back(k.who.key);
            member_conns.push_back(c);
        }
    // Alone, or on an uplink that outruns all of its devices together (a
    // cache on a fast link): fetch everything afar as a cache does, and let
    // the devices decide alone (an empty Assign releases one).
    if (members.size() == 1 || self_weight(s, member_conns) >= static_cast<double>(member_conns.size())) {
        s.dl->clear_import_share();
        for (auto& [c, share] : s.assigned) out_.push_back(act::SendAssign{c, id, {}});
        s.assigned.clear();
        return;
    }
    Bitfield lacking(s.shape.segments), fetching(s.shape.segments);
    for (std::uint32_t seg = 0; seg < s.shape.segments; ++seg) {
        if (!s.held.test(seg) && !s.dl->held_nearby(seg)) lacking.set(seg);
        if (s.dl->in_flight(seg)) fetching.set(seg);
    }
    s.shares->assign(members, lacking, fetching, now.ms);
    s.dl->set_import_share(s.shares->share_of(0));
    for (std::size_t i = 0; i < member_conns.size(); ++i) {
        Bitfield share = s.shares->share_of(i + 1);
        // Tell a device when its share changed in what the domain still lacks
        // (segments that arrived meanwhile need no word).
        auto [it, fresh] = s.assigned.try_emplace(member_conns[i], Bitfield(s.shape.segments));
        Bitfield still = it->second;
        for (std::uint32_t seg = 0; seg < s.shape.segments; ++seg)
            if (!lacking.test(seg)) still.reset(seg);
        if (!fresh && still == share) continue;
        it->second = share;
        out_.push_back(act::SendAssign{member_conns[i], id, share.to_bytes()});
    }
}

// A segment being fetched afar has just reached the own domain: a far
// request that has brought less than half of it is taken back, and the
// segment is fetched nearby instead (one import per domain, not two).
void Engine::prefer_nearby(const PatchId& id, Patch& s, std::uint32_t seg) {
    if (!s.dl->in_flight(seg)) return;  // the common case: nothing to take back
    // The connections it is asked of, in connection order (as conns_ orders them).
    s.dl->requesters(seg, requesters_);
    for (PeerId p : requesters_) {
        ConnId c{p};
        auto it = conns_.find(c);
        if (it == conns_.end()) continue;
        const Conn& k = it->second;
        if (k.cls < SourceClass::OtherDomain || !s.dl->is_requested(p, seg) || s.storing.count({c, seg})) continue;
        auto got = s.partial.find({c, seg});
        if (got != s.partial.end() && std::uint64_t{got->second} * 2 >= s.shape.length(seg)) continue;
        steps_.clear();
        s.dl->withdraw(raw(c), seg, steps_);
        run_steps(id, s, steps_);
    }
}

// How many devices' worth the super-node's own uplink counts for in the
// import: its capacity against a device's uplink (the operator's figure, or
// the fastest delivery measured from one of the devices if that is more).
// Unknown either way: one.
double Engine::self_weight(const Patch& s, const std::vector<ConnId>& devices) const {
    if (!cfg_.uplink_capacity) return 1.0;
    double device = static_cast<double>(cfg_.device_uplink);
    for (auto c : devices) device = std::max(device, s.dl->rate_of(raw(c)));
    if (device <= 0) return 1.0;
    return std::max(1.0, static_cast<double>(cfg_.uplink_capacity) / device);
}

// Whether the own uplink, as the operator gave it, carries more than all the
// devices of the domain connected to us could upload together.
bool Engine::outruns_devices() const {
    if (!cfg_.uplink_capacity || !cfg_.device_uplink) return false;
    return cfg_.uplink_capacity >= own_devices_ * cfg_.device_uplink;
}

// Which record of first copies a request is checked against, and so which
// reserve holds for it.
// - Super-nodes see each other across domains: for them, and for devices of a
//   domain with a super-node here, one record serves all, with the origin's
//   long reserve (the copy travels on through the super-nodes).
// - A device of a domain without a super-node here finds its copies only in
//   its own domain, which has a record of its own with the ordinary reserve.
//   One record for every domain would hold the origin to one copy of a
//   segment per reserve for the whole network, and devices online only
//   briefly would queue for it without end. Past kReserveDomains domains the
//   records start over (fail open: a few more copies, memory stays bounded).
// - A super-node's export has none: every super-node needs every segment, and
//   a device of another domain asks afar only for its domain's import, so
//   neither is a copy its own devices can take from anyone. Recording it
//   refused the own domain for the reserve (in the loopback demo a domain's
//   last devices waited 8 s on that).
SuperSeeding* Engine::reserve_of(Patch& s, const Conn& k, bool create) {
    if (!s.superseed) return nullptr;
    if (cfg_.role == Role::Super && (k.who.role == Role::Super || k.who.domain != cfg_.domain)) return nullptr;
    if (cfg_.role != Role::Origin || k.who.role == Role::Super || supers_by_domain_.contains(k.who.domain))
        return &*s.superseed;
    auto it = s.domain_reserve.find(k.who.domain);
    if (it != s.domain_reserve.end()) return &it->second;
    if (!create) return nullptr;
    if (s.domain_reserve.size() >= kReserveDomains) s.domain_reserve.clear();
    return &s.domain_reserve.try_emplace(k.who.domain, s.shape.segments, cfg_.superseed_reserve).first->second;
}

void Engine::coordinate_all(Instant now) {
    for (auto& [id, s] : patches_) coordinate(id, s, now);
}

void Engine::on_assign(ConnId c, const PatchId& p, ByteView share, Instant now) {
    Conn* k = conn(c);
    Patch* s = patch(p);
    if (!k || !s) return;
    // An empty share releases the device: it decides alone again.
    std::optional<Bitfield> bf;
    if (!share.empty() && !(bf = Bitfield::from_bytes(share, s->shape.segments)))
        return closing(c, CloseWhy::ProtocolViolation, "assign: bitfield does not fit the manifest");
    // Only the own domain's super-node coordinates a device's imports.
    if (cfg_.role != Role::Peer || k->who.role != Role::Super || k->who.domain != cfg_.domain) return;
    if (!wants_downloading(*s)) return;
    if (!bf) {
        if (s->assigner == c) s->assigner.reset();
        s->dl->clear_import_share();
        return pump_requests(p, *s, now);
    }
    s->assigner = c;
    s->dl->set_import_share(*bf);
    if (s->dl->share_left() > 0 && (s->last_far_lookup == 0 || now.ms >= s->last_far_lookup + cfg_.far_lookup_gap))
        s->next_lookup = std::min(s->next_lookup, now.ms);
    pump_requests(p, *s, now);
}

// A connection is gone: a super-node forgets the device's share (coordinate()
// hands it to the others), a device whose assigning super-node left decides
// alone again.
void Engine::assigner_gone(ConnId c) {
    for (auto& [id, s] : patches_) {
        s.assigned.erase(c);
        if (s.assigner != c) continue;
        s.assigner.reset();
        if (s.dl) s.dl->clear_import_share();
    }
}

}  // namespace ps::core
