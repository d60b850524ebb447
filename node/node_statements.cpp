// Signed operator statements in the node (wire/statement.hpp): one channel for
// what an operator says to the whole network. A statement arrives by gossip
// (MsgStatement, from every peer at connect and whenever a peer learns a new
// one), from the DHT (dht::statements_key(), read at start and listened to),
// or from the operator (publish_statement). It is checked and applied under
// the trust store (TrustStore::apply_statement: rotations, revocations), kept,
// and forwarded once to every other peer. A new kind that changes trust is a
// case in TrustStore::apply_statement. Freshness is the one kind that is not
// the operator's: signed by the enrolled origin's node key, it is checked and
// kept here (on_freshness), never in the trust store, the trust file or the DHT.
#include <algorithm>

#include "node/log.hpp"
#include "node/node.hpp"
#include "node/node_util.hpp"
#include "wire/statement.hpp"

namespace ps::node {
using namespace node_util;

namespace {
constexpr std::size_t kMaxKeptStatements = 1024;
}

Status Node::on_statement(Peer* from, ByteView bytes) {
    const Hash32 id = wire::statement_id(bytes);
    if (statements_.count(id)) return {};
    if (auto fresh = wire::decode_statement(bytes); fresh && fresh->kind == wire::StatementKind::Freshness)
        return on_freshness(from, *fresh, bytes);
    ++statements_received_;
    if (!opts_.trust) return err("statement: this node has no trust store");
    TrustStore next = *opts_.trust;
    auto changed = next.apply_statement(bytes);
    if (!changed) {
        ++statements_rejected_;
        log::warn("statement_rejected", {{"from", from ? from->conn->remote() : std::string("dht")},
                                         {"reason", changed.error()}});
        return std::move(changed).take_error();
    }
    if (statements_.size() < kMaxKeptStatements) statements_.emplace(id, Bytes(bytes.begin(), bytes.end()));
    for (auto& [cid, p] : peers_)
        if (&p != from && p.conn->ready()) send_msg(p, wire::MsgStatement{bytes});
    auto st = wire::decode_statement(bytes);
    log::info("statement", {{"kind", st ? wire::to_string(st->kind) : "?"}, {"id", wire::short_hex(id)},
                            {"changed", *changed}});
    if (!*changed) return {};
    opts_.trust = std::move(next);
    if (live_trust_) live_trust_->set(*opts_.trust);
    // Peers whose certificate no longer holds (revoked node, revoked operator
    // key) are closed now, not at their next handshake.
    if (enrollment_required()) {
        std::vector<transfer::Connection*> gone;
        for (auto& [cid, p] : peers_)
            if (p.conn->ready() && !admit_peer(*p.conn)) gone.push_back(p.conn.get());
        if (!gone.empty()) log::info("peers_closed_after_statement", {{"count", gone.size()}});
    }
    if (opts_.on_trust_changed) opts_.on_trust_changed(*opts_.trust);
    // Halted releases: stop fetching and serving them now (what the daemon
    // did not already drop); they are never exported, and never verify again.
    std::vector<Hash32> halted;
    for (auto& [sid, s] : swarms_)
        if (opts_.trust->halted(s.vm.manifest.name, s.vm.manifest.version)) halted.push_back(sid);
    for (auto& sid : halted) {
        log::warn("patch_halted", {{"id", wire::short_hex(sid)}});
        (void)remove(sid);
    }
    for (auto it = latest_.begin(); it != latest_.end();)
        it = opts_.trust->halted(it->second.manifest.name, it->second.manifest.version) ? latest_.erase(it) : std::next(it);
    return {};
}

Status Node::publish_statement(ByteView bytes) {
    if (auto s = on_statement(nullptr, bytes); !s) return s;
    if (dht_ && !stopping_) {
        const Hash32 id = wire::statement_id(bytes);
        std::uint64_t value_id = 0;
        for (int i = 0; i < 8; ++i) value_id = value_id << 8 | id[i];
        dht_->announce(dht::statements_key(), value_id, Bytes(bytes.begin(), bytes.end()), {},
                       dht::ValueKind::Statement);
    }
    run_actions();
    return {};
}

// Freshness: signed by the origin's node key (decode_statement checked the
// signature), whose certificate (the payload) enrolls it as the origin under
// this node's trust store, and not issued in the future. Only one newer than
// the newest seen, and within the window, is news: kept (sent to each new
// peer) and forwarded once. Gossip only: storing nodes take statements from
// operator keys alone, and one a minute under the one statements key would
// pile up there and wake every listener.
Status Node::on_freshness(Peer* from, const wire::Statement& st, ByteView bytes) {
    if (st.issued <= fresh_issued_) return {};
    auto refuse = [&](const std::string& why) {
        ++freshness_rejected_;
        log::warn("freshness_rejected",
                  {{"from", from ? from->conn->remote() : std::string("local or dht")}, {"reason", why}});
        return err(why);
    };
    if (!opts_.trust) return refuse("freshness: this node has no trust store");
    auto cert = wire::decode_cert(st.payload);
    if (!cert) return refuse("freshness: " + cert.error());
    if (auto bad = check_cert(st.payload, st.signer, Role::Origin, cert->domain, *opts_.trust, unix_now()))
        return refuse("freshness: not from an enrolled origin: " + bad->reason);
    const std::int64_t now = unix_now();
    if (st.issued > now + kMaxManifestClockSkewSeconds) return refuse("freshness: issued " + std::to_string(st.issued - now) + " s ahead of this node's clock (at most " +
                      std::to_string(kMaxManifestClockSkewSeconds) + " s)");
    if (opts_.freshness_window_s > 0 && now - st.issued > opts_.freshness_window_s) return {};  // old news
    fresh_issued_ = st.issued;
    fresh_bytes_.assign(bytes.begin(), bytes.end());
    for (auto& [cid, p] : peers_)
        if (&p != from && p.conn->ready()) send_msg(p, wire::MsgStatement{bytes});
    return {};
}

void Node::refresh_freshness() {
    if (self_.role != Role::Origin || self_.cert.empty() || opts_.freshness_interval_ms == 0 || stopping_) return;
    const auto t = loop_.now_ms();
    if (fresh_sent_ms_ != 0 && t - fresh_sent_ms_ < opts_.freshness_interval_ms) return;
    fresh_sent_ms_ = t;
    wire::Statement st;
    st.kind = wire::StatementKind::Freshness;
    // Strictly increasing even within one second: receivers keep only newer ones.
    st.issued = std::max(unix_now(), fresh_issued_ + 1);
    st.seq = ++fresh_seq_;
    st.payload = self_.cert;
    (void)on_statement(nullptr, wire::encode_statement(st, self_.secret));
}

void Node::fetch_statements() {
    if (!dht_ || stopping_ || !opts_.trust) return;
    auto take = [this](std::vector<Bytes> values) {
        for (auto& v : values) (void)on_statement(nullptr, v);
        run_actions();
    };
    dht_->get(dht::statements_key(), take, dht::ValueKind::Statement);
    if (statements_listen_ == 0) {
        statements_listen_ = dht_->listen(dht::statements_key(), [take](std::vector<Bytes> values, bool expired) {
            if (!expired) take(std::move(values));
        }, dht::ValueKind::Statement);
        if (statements_listen_) watch_listens_.push_back(statements_listen_);
    }
}

}  // namespace ps::node
