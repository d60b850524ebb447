// Reachability: whether other nodes can dial the address this node advertises.
//
// DHT nodes answer every request with the address they saw it come from, and
// the adapter gathers those (dht::Node::public_addresses). A node behind a NAT
// advertises its private address (the source address of its interface) but is
// seen at the router's public one: nobody outside can dial what it advertises,
// and every holder record it publishes costs its readers a dial that times out.
//
// So, once DHT nodes of the advertised address's family (IPv4 or IPv6) have
// reported where they see it:
//  - the advertised host among the addresses seen: reachable (nodes of its own
//    LAN see the private address, and those are the ones that can dial it);
//  - not among them, advertise worked out by the node: unreachable. It
//    withdraws its holder and membership records and leaves itself out of the
//    contacts it gossips. It still downloads over the connections it dials,
//    and serves whoever it is connected to. It is checked again every 10 s:
//    once the address shows up as seen (the network changed), the records go
//    out again;
//  - not among them, but node.advertise set by the operator: kept (a port
//    forward to this host), reported as "configured" with what is seen.
//
// An unreachable node asks its router to forward a port (UPnP IGD, NAT-PMP;
// node_portmap.cpp, docs/daemon.md "Port mapping"); granted, it advertises the
// router's public address and the check above finds it reachable.
#include <algorithm>

#include "node/log.hpp"
#include "node/node.hpp"

namespace ps::node {

namespace {

constexpr const char* kReachNames[] = {"unknown", "reachable", "unreachable", "configured"};
const char* reach_name(int r) { return kReachNames[r]; }

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
}

}  // namespace

std::string Node::reachability() const { return reach_name(static_cast<int>(reach_)); }

void Node::check_reachability() {
    if (!dht_ || stopping_) return;
    // Every second until DHT nodes have answered, then every 10 s (the call
    // takes the DHT runner's lock).
    auto t = loop_.now_ms();
    if (t < next_reach_check_ms_) return;
    next_reach_check_ms_ = t + (reach_ == Reach::Unknown ? 1'000 : 10'000);
    auto seen = dht_->public_addresses();
    if (seen.size() > 8) seen.resize(8);
    // Only reports of the advertised address's family decide: a dual-stack
    // node advertising IPv6 that has heard only from IPv4 nodes cannot tell.
    auto is_v6 = [](const std::string& h) { return h.find(':') != std::string::npos; };
    bool v6 = is_v6(opts_.advertise_host);
    bool any_same_family = std::any_of(seen.begin(), seen.end(), [&](auto& h) { return is_v6(h) == v6; });
    Reach next = Reach::Unknown;
    if (any_same_family) {
        bool listed = std::find(seen.begin(), seen.end(), opts_.advertise_host) != seen.end();
        next = listed ? Reach::Reachable : opts_.advertise_configured ? Reach::Configured : Reach::Unreachable;
    }
    seen_as_ = std::move(seen);
    if (next == reach_) return;
    Reach was = reach_;
    reach_ = next;
    log::Fields f{{"state", reach_name(static_cast<int>(next))},
                  {"advertise", opts_.advertise_host},
                  {"seen_as", joined(seen_as_)}};
    if (next == Reach::Unreachable) {
        log::warn("unreachable", f);
        withdraw_records();
        return;
    }
    if (next == Reach::Configured) log::warn("reachability", f);
    else log::info("reachability", f);
    if (was == Reach::Unreachable) announce_records();
}

// Every holder and membership record this node has put, taken back.
void Node::withdraw_records() {
    if (!dht_) return;
    dht_->withdraw(dht::holder_key(self_.domain, Hash32{}), member_value_id_);
    if (self_.role != Role::Peer) dht_->withdraw(dht::global_holder_key(Hash32{}), member_value_id_);
    for (auto& [id, s] : swarms_) {
        if (!s.announced) continue;
        dht_->withdraw(dht::holder_key(self_.domain, s.vm.id), s.value_id);
        if (self_.role != Role::Peer) dht_->withdraw(dht::global_holder_key(s.vm.id), s.value_id);
        s.announced = false;
        s.announced_full = false;
    }
}

// The records again, as they would have been put (membership, then each patch
// taking part).
void Node::announce_records() {
    announce_member();
    for (auto& [id, s] : swarms_)
        if (auto* h = engine_.held(id); h && (s.downloading || h->count() > 0)) announce(s, h->count(), h->size());
}

}  // namespace ps::node
