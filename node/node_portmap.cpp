// Port mapping: when DHT nodes show this node unreachable (node_reach.cpp),
// ask the LAN's gateway to forward a public port to the transfer listener
// (UPnP IGD, then NAT-PMP; portmap/). Granted, the node advertises the
// gateway's public address and port; DHT nodes see it there, so it turns
// reachable and its records go out again. The lease is renewed at half its
// time; a failed renewal drops the mapping (the node is unreachable again and
// withdraws its records) and the node asks again later. On shutdown the
// mapping is deleted.
//
// The requests block (SSDP discovery, HTTP, NAT-PMP's UDP retries: a few
// seconds at most), so each runs on portmap_thread_ and its answer comes back
// to the loop through loop_.post; one request at a time.
//
// Only the transfer port (TCP) is mapped. The DHT's UDP socket needs no
// mapping to work: OpenDHT talks to others over the NAT's own translation of
// what it sends, as clients behind NATs do.
#include <algorithm>

#include "node/log.hpp"
#include "node/node.hpp"

namespace ps::node {

namespace {

portmap::Options portmap_options(const NodeOptions& o) {
    portmap::Options p;
    p.upnp = o.portmap_upnp;
    p.natpmp = o.portmap_natpmp;
    return p;
}

}  // namespace

std::uint16_t Node::advertised_port() const { return mapping_ ? mapping_->external_port : listen_port(); }

// From housekeeping, once a second: a first request once unreachable, a
// renewal when due.
void Node::portmap_tick() {
    if (stopping_ || portmap_busy_ || (!opts_.portmap_upnp && !opts_.portmap_natpmp)) return;
    if (loop_.now_ms() < next_portmap_ms_) return;
    if (mapping_) portmap_start(true);
    else if (reach_ == Reach::Unreachable) portmap_start(false);
}

void Node::portmap_join() {
    if (portmap_thread_.joinable()) portmap_thread_.join();
}

void Node::portmap_start(bool renewal) {
    portmap_join();  // the previous request has posted its answer already
    auto o = portmap_options(opts_);
    auto port = listen_port();
    std::optional<portmap::Mapping> old = renewal ? mapping_ : std::nullopt;
    std::weak_ptr<bool> alive = alive_;
    auto cancel = portmap_cancel_;
    transfer::Loop* loop = &loop_;
    portmap_busy_ = true;
    try {
        portmap_thread_ = std::thread([this, o, port, old, alive, cancel, loop, renewal] {
            auto r = old ? portmap::renew(o, *old) : portmap::map(o, portmap::Protocol::Tcp, port);
            if (cancel->load()) {  // shut down meanwhile: nobody will advertise it
                if (r) (void)portmap::unmap(o, *r);
                return;
            }
            loop->post([this, alive, r, renewal] {
                if (auto a = alive.lock(); a && *a) portmap_done(r, renewal);
            });
        });
    } catch (const std::exception& e) {
        portmap_busy_ = false;
        next_portmap_ms_ = loop_.now_ms() + 60'000;
        log::error("port_mapping_failed", {{"error", std::string("cannot start a thread: ") + e.what()}});
    }
}

void Node::portmap_done(Result<portmap::Mapping> r, bool renewal) {
    portmap_busy_ = false;
    if (stopping_) {  // answered after shutdown began: take it back at once
        if (r) {
            mapping_ = *r;
            portmap_release();
        }
        return;
    }
    auto t = loop_.now_ms();
    if (!r) {
        ++portmap_failures_;
        portmap_error_ = r.error();
        // 1, 2, 4 ... 30 minutes: a router may come up, or start offering it.
        next_portmap_ms_ = t + std::min<std::uint64_t>(60'000ull << std::min(portmap_failures_ - 1, 5), 30 * 60'000);
        log::Fields f{{"error", r.error()}, {"renewal", renewal ? "yes" : "no"},
                      {"retry_s", std::to_string((next_portmap_ms_ - t) / 1000)}};
        if (portmap_failures_ == 1 || renewal) log::warn("port_mapping_failed", f);
        else log::info("port_mapping_failed", f);
        if (renewal && mapping_) {  // the gateway no longer forwards: unreachable again
            opts_.advertise_host = unmapped_host_;
            mapping_.reset();
            next_reach_check_ms_ = 0;
            check_reachability();
        }
        return;
    }
    bool moved = mapping_ && (mapping_->external_host != r->external_host || mapping_->external_port != r->external_port);
    if (!mapping_) unmapped_host_ = opts_.advertise_host;
    bool news = !mapping_ || moved;
    mapping_ = *r;
    portmap_failures_ = 0;
    portmap_error_.clear();
    opts_.advertise_host = r->external_host;
    // At half the lease; a permanent one is checked every half hour.
    std::uint64_t renew_s = r->lease_s ? std::max<std::uint32_t>(60, r->lease_s / 2) : 1'800;
    next_portmap_ms_ = t + renew_s * 1000;
    if (news) log::info("port_mapped", {{"mapping", portmap::describe(*r)}});
    if (moved && advertising()) announce_records();
    next_reach_check_ms_ = 0;
    check_reachability();
    if (news && reach_ == Reach::Unreachable)  // DHT nodes see yet another address: a second NAT
        log::warn("port_mapped_unreachable", {{"mapping", portmap::describe(*r)}, {"advertise", r->external_host}});
}

// On shutdown: the mapping deleted on the gateway, on the thread (joined by
// ~Node), so that the loop does not wait for the gateway.
void Node::portmap_release() {
    portmap_cancel_->store(true);
    if (portmap_busy_ || !mapping_) return;  // a request under way deletes what it gets
    portmap_join();
    auto o = portmap_options(opts_);
    auto m = *mapping_;
    log::info("port_unmapping", {{"mapping", portmap::describe(m)}});
    mapping_.reset();
    try {
        portmap_thread_ = std::thread([o, m] { (void)portmap::unmap(o, m); });
    } catch (const std::exception&) {
        // the lease runs out on its own
    }
}

}  // namespace ps::node
