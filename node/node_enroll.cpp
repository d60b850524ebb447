// Enrollment in the node: a peer whose certificate does not enroll it, with
// the role and domain it claims, under this node's trust store is closed at
// the end of the handshake (before the engine, gossip or segments see it), and
// holder records read from the DHT are kept only when their certificate does
// the same. Nothing changes when the trust store does not require enrollment.
#include "node/log.hpp"
#include "node/node.hpp"
#include "node/node_util.hpp"

namespace ps::node {
using namespace node_util;

bool Node::admit_peer(transfer::Connection& c) {
    if (!enrollment_required()) return true;
    const auto& who = c.peer();
    auto refused = check_cert(who.cert, who.key, who.role, who.domain, *opts_.trust, unix_now());
    if (!refused) return true;
    peers_refused_.add(refused->why);
    log::warn("peer_refused", {{"peer", c.remote()}, {"key", key_prefix(who.key)}, {"why", to_string(refused->why)},
                               {"reason", refused->reason}});
    c.close(transfer::CloseCode::HandshakeFailed, "not enrolled: " + refused->reason);
    return false;
}

std::vector<wire::HolderRecord> Node::holders_in(const std::vector<Bytes>& values, std::string_view domain,
                                                 const Hash32& id, std::size_t max_records) {
    if (!enrollment_required()) return dht::select_holders(values, domain, id, unix_now(), 3600, max_records);
    const auto now = unix_now();
    auto admit = [this, now](const wire::HolderRecord& r) {
        auto refused = check_record_cert(r, *opts_.trust, now);
        if (refused) records_refused_.add(refused->why);
        return !refused;
    };
    return dht::select_holders(values, domain, id, now, 3600, max_records, nullptr, admit);
}

wire::HolderRecord Node::own_record() const {
    wire::HolderRecord r;
    r.role = self_.role;
    r.domain = self_.domain;
    r.host = opts_.advertise_host;
    r.port = advertised_port();
    r.node_key = self_.key;
    r.cert = self_.cert;
    r.format = r.cert.empty() ? wire::kRecordFormat : wire::kRecordFormatCert;
    r.issued = unix_now();
    return r;
}

}  // namespace ps::node
