// LAN discovery: a node with no bootstrap node finds DHT nodes on its LAN.
//
// Each node with it on multicasts a beacon (wire/beacon.hpp: its DHT port and
// network id) to a group on its LAN, every 2 s while its DHT has no node and
// every 30 s after, and pings the DHT port of every node whose beacon it hears
// (each sender at most once per 30 s, at most kMaxLanSenders tracked); OpenDHT
// takes a node that answers into its routing table, and from there the DHT is
// joined as from a bootstrap node. The address pinged is the datagram's
// source, so a beacon can only point at the host that sent it; what a node
// learns this way is a DHT contact, no more trusted than one from any other
// DHT node.
#include "node/log.hpp"
#include "node/node.hpp"
#include "wire/beacon.hpp"

namespace ps::node {

namespace {
constexpr std::size_t kMaxLanSenders = 64;
constexpr std::uint64_t kLanRepingMs = 30'000;
}  // namespace

void Node::lan_start() {
    if (!opts_.lan_discovery || !dht_) return;
    lan_sender_ = crypto::random_u64();
    auto s = transfer::MulticastSocket::open(loop_, opts_.lan_group, opts_.lan_port,
                                             [this](ByteView d, const std::string& from) { on_beacon(d, from); });
    if (!s) {
        log::warn("lan_discovery_failed", {{"error", s.error()}});
        return;
    }
    lan_ = std::move(*s);
    log::info("lan_discovery", {{"group", opts_.lan_group + ":" + std::to_string(opts_.lan_port)}});
}

void Node::lan_tick() {
    if (!lan_ || stopping_) return;
    auto t = loop_.now_ms();
    std::erase_if(lan_pinged_, [t](auto& e) { return t - e.second >= kLanRepingMs; });
    if (t < next_beacon_ms_) return;
    next_beacon_ms_ = t + (dht_->good_nodes() == 0 ? 2'000 : 30'000);
    lan_->send(wire::encode_beacon({dht_port(), opts_.dht.network_id, lan_sender_}));
    ++lan_counts_.sent;
}

void Node::on_beacon(ByteView data, const std::string& from) {
    auto b = wire::decode_beacon(data);
    if (!b) {
        ++lan_counts_.refused;
        log::debug("beacon_refused", {{"from", from}, {"error", b.error()}});
        return;
    }
    if (b->sender == lan_sender_ || b->network_id != opts_.dht.network_id || stopping_) return;
    ++lan_counts_.heard;
    auto key = from + ":" + std::to_string(b->dht_port);
    if (lan_pinged_.count(key) || lan_pinged_.size() >= kMaxLanSenders) return;
    lan_pinged_[key] = loop_.now_ms();
    if (lan_found_.insert(key).second) {
        ++lan_counts_.found;
        if (lan_found_.size() > kMaxLanSenders) lan_found_.erase(lan_found_.begin());
        log::info("lan_node_found", {{"dht", key}});
    }
    dht_->add_node(from, b->dht_port);
}

}  // namespace ps::node
