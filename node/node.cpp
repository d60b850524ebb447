// The node's core loop: start, serving and fetching patches, connections and
// messages, uploads, timers, status and shutdown. How it finds and is found
// (DHT records, gossip, announcements, rollout counts) is in node_discovery.cpp.
#include "node/node.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "crypto/crypto.hpp"
#include "dht/keys.hpp"
#include "node/log.hpp"
#include "node/node_util.hpp"
#include "transfer/process.hpp"
#include "wire/record.hpp"

namespace ps::node {

using namespace node_util;

Node::Node(transfer::Loop& loop, NodeOptions opts, transfer::Identity identity)
    : loop_(loop), opts_(std::move(opts)), self_(std::move(identity)) {
    if (opts_.advertise_host.empty()) opts_.advertise_host = opts_.listen_host;
    opts_.download.local_first = self_.role == Role::Peer;  // devices spare the links between domains
    uploads_.set_config(opts_.uploads);
    set_rate_limits(opts_.upload_rate, opts_.download_rate);
}

void Node::set_upload_slots(std::uint32_t slots) {
    opts_.uploads.slots = slots;
    uploads_.set_config(opts_.uploads);
}

void Node::set_rate_limits(std::uint64_t upload, std::uint64_t download) {
    auto now = loop_.now_ms();
    // A burst of a quarter second, but at least one segment, so a segment can always go.
    auto burst = [](std::uint64_t rate) { return std::max<std::uint64_t>(rate / 4, wire::kDefaultSegmentSize); };
    uploads_.set_rate(now, upload, burst(upload));
    download_bucket_.set_rate(now, download, burst(download));
    opts_.upload_rate = upload;
    opts_.download_rate = download;
}

Node::~Node() {
    *alive_ = false;
    peers_.clear();  // connections close their handles; no callbacks reach us any more
}

Status Node::start() {
    // The DHT first, so that its sockets get low fd numbers (stack.md P4).
    std::weak_ptr<bool> alive = alive_;
    transfer::Loop* loop = &loop_;
    auto post = [loop, alive](std::function<void()> fn) {
        loop->post([alive, fn = std::move(fn)] {
            if (auto a = alive.lock(); a && *a) fn();
        });
    };
    auto d = dht::Node::start(opts_.dht, post);
    if (!d) return err("dht: " + d.error());
    dht_ = std::move(*d);
    auto l = transfer::Listener::start(loop_, opts_.listen_host, opts_.listen_port, self_, *this,
                                       [this](std::unique_ptr<transfer::Connection> c) {
                                           if (stopping_ || peers_.size() >= opts_.max_peers * 2) return;  // dropped = closed
                                           auto id = c->id();
                                           peers_[id].conn = std::move(c);
                                       });
    if (!l) return std::move(l).take_error();
    listener_ = std::move(*l);
    timer_ = std::make_unique<transfer::Timer>(loop_);
    timer_->start(100, 100, [this] { tick(); });
    member_value_id_ = crypto::random_u64();
    announce_member();
    join_gossip();
    for (auto& name : opts_.watch) {
        auto t = dht_->listen(dht::manifest_key(name), [this](std::vector<Bytes> values, bool expired) {
            if (!expired)
                for (auto& v : values) on_announce(nullptr, v);
        }, dht::ValueKind::Manifest);
        if (t) watch_listens_.push_back(t);
    }
    check_watched();
    return {};
}

std::uint16_t Node::listen_port() const { return listener_ ? listener_->port() : 0; }
std::uint16_t Node::dht_port() const { return dht_ ? dht_->port() : 0; }

const SwarmStats* Node::stats(const Hash32& id) const {
    auto it = swarms_.find(id);
    return it == swarms_.end() ? nullptr : &it->second.stats;
}

Node::Swarm* Node::swarm(const Hash32& id) {
    auto it = swarms_.find(id);
    return it == swarms_.end() ? nullptr : &it->second;
}

void Node::add_swarm(Swarm s) {
    s.value_id = crypto::random_u64();
    s.stats.started_ms = loop_.now_ms();
    s.index = static_cast<std::uint32_t>(swarm_by_index_.size());
    auto id = s.vm.id;
    swarm_by_index_.push_back(id);
    auto& sw = swarms_[id] = std::move(s);
    for (auto& [cid, p] : peers_)
        if (p.conn->ready()) send_have(p, sw);
    if (sw.store->held().count() > 0) announce(sw);
}

Status Node::serve(const VerifiedManifest& vm, const std::string& file) {
    if (swarms_.count(vm.id)) return err("patch " + wire::short_hex(vm.id) + " is already being served");
    auto st = SegmentStore::open_complete(file, vm);
    if (!st) return std::move(st).take_error();
    if (!(*st)->complete())
        log::warn("serve_partial", {{"file", file}, {"matching", (*st)->held().count()}, {"segments", (*st)->held().size()}});
    Swarm s;
    s.vm = vm;
    s.store = std::move(*st);
    if (self_.role == Role::Origin) s.superseed.emplace(vm.manifest.segment_count(), opts_.superseed_reserve_ms);
    add_swarm(std::move(s));
    announce_manifest(vm);
    return {};
}

Status Node::fetch(const VerifiedManifest& vm, const std::string& out_path, Done on_complete) {
    if (swarms_.count(vm.id)) return err("patch " + wire::short_hex(vm.id) + " is already here");
    std::string dir = opts_.data_dir + "/" + to_hex(vm.id);
    auto st = SegmentStore::open_download(dir, vm);
    if (!st) return std::move(st).take_error();
    Swarm s;
    s.dir = dir;
    s.vm = vm;
    s.store = std::move(*st);
    s.out_path = out_path;
    s.on_complete = std::move(on_complete);
    s.dl.emplace(vm.manifest.segment_count(), opts_.download, crypto::random_u64());
    for (std::uint32_t i = 0; i < vm.manifest.segment_count(); ++i)
        if (s.store->held().test(i)) s.dl->mark_held(i);
    add_swarm(std::move(s));
    auto& sw = swarms_.at(vm.id);
    if (sw.store->complete()) finish(sw);
    else lookup(sw);
    return {};
}

// ---- connections ----

core::SourceClass Node::class_of(const Peer& p) const {
    return core::classify(self_.domain, p.conn->peer().domain, p.conn->peer().role);
}

void Node::send_msg(Peer& p, const wire::Message& m) {
    scratch_.clear();
    wire::encode_message(m, scratch_);
    p.conn->send(scratch_);
}

void Node::send_have(Peer& p, Swarm& s) {
    if (!p.told.insert(s.vm.id).second) return;
    send_msg(p, wire::MsgHave{s.vm.id, s.store->held().to_bytes()});
}

void Node::on_ready(transfer::Connection& c) {
    auto it = peers_.find(c.id());
    if (it == peers_.end()) return;
    const auto& key = c.peer().key;
    dialing_.erase(key);
    for (auto& [sid, s] : swarms_) tell_connecting(s);
    if (auto dup = by_key_.find(key); dup != by_key_.end()) {
        // Two connections between the same pair (both dialed at once): keep the
        // one dialed by the smaller key, so that both ends make the same choice.
        auto& other = peers_.at(dup->second);
        const auto& dialer_of = [&](transfer::Connection& x) -> const crypto::PublicKey& {
            return x.dialer() ? self_.key : x.peer().key;
        };
        bool keep_new = dialer_of(c) < dialer_of(*other.conn);
        if (!keep_new) return c.close("duplicate connection");
        by_key_.erase(dup);
        other.conn->close("duplicate connection");
    }
    by_key_[key] = c.id();
    log::debug("connected", {{"peer", c.remote()}, {"domain", c.peer().domain}, {"role", to_string(c.peer().role)},
                             {"dialed", c.dialer()}});
    send_msg(it->second, peers_msg());
    for (auto& [name, vm] : latest_) send_msg(it->second, wire::MsgAnnounce{vm.bytes});
    for (auto& [id, s] : swarms_) send_have(it->second, s);
}

void Node::on_closed(transfer::Connection& c, const std::string& reason) {
    auto id = c.id();
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    // Protocol violations and failed handshakes are always worth a line; the
    // ordinary ends of a connection only when tracing.
    bool ordinary = reason == "peer closed the connection" || reason == "node shutting down" ||
                    reason == "duplicate connection" || reason.rfind("connect failed", 0) == 0 ||
                    reason.rfind("read failed", 0) == 0 || reason.rfind("write failed", 0) == 0 ||
                    reason.rfind("peer said goodbye", 0) == 0;
    if (ordinary) log::debug("connection_closed", {{"peer", c.remote()}, {"reason", reason}});
    else log::warn("connection_closed", {{"peer", c.remote()}, {"reason", reason}});
    auto bk = by_key_.find(c.peer().key);
    if (bk != by_key_.end() && bk->second == id) by_key_.erase(bk);
    if (it->second.dialed) dialing_.erase(*it->second.dialed);
    for (auto& [sid, s] : swarms_) tell_connecting(s);
    for (auto& [sid, s] : swarms_) {
        if (!s.dl) continue;
        s.dl->remove_peer(id);
        for (auto p = s.partial.begin(); p != s.partial.end();)
            p = p->first.first == id ? s.partial.erase(p) : std::next(p);
    }
    uploads_.peer_gone(id);
    peers_.erase(it);  // destroys c
    for (auto& [sid, s] : swarms_) pump_requests(s);
}

void Node::on_message(transfer::Connection& c, ByteView frame) {
    auto pit = peers_.find(c.id());
    if (pit == peers_.end()) return;
    Peer& p = pit->second;
    auto msg = wire::decode_message(frame);
    if (!msg) return c.close(msg.error());
    auto now = loop_.now_ms();
    std::visit(
        [&](auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, wire::MsgKeepalive>) {
                return;
            } else if constexpr (std::is_same_v<T, wire::MsgBye>) {
                c.close("peer said goodbye: " + m.reason);
            } else if constexpr (std::is_same_v<T, wire::MsgAnnounce>) {
                on_announce(&p, m.manifest);
            } else if constexpr (std::is_same_v<T, wire::MsgPeers>) {
                on_peers(p, m.contacts);
            } else {
                Swarm* s = swarm(m.manifest);
                if constexpr (std::is_same_v<T, wire::MsgRequest>) {
                    using V = core::Uploads::Verdict;
                    auto reject = [&](core::RejectReason r) {
                        send_msg(p, wire::MsgReject{m.manifest, m.segment, std::uint8_t(r)});
                    };
                    if (!s) return reject(core::RejectReason::UnknownPatch);
                    if (opts_.fault_ignore_requests) return;
                    if (s->superseed && s->store->held().test(m.segment) && !s->superseed->allow(m.segment, now))
                        return reject(core::RejectReason::Busy);
                    bool banned = s->stats.banned.count(to_hex(c.peer().key)) != 0;
                    bool priority = c.peer().role == Role::Super;
                    switch (uploads_.request(c.id(), cookie(*s, m.segment), s->store->held().test(m.segment), banned,
                                             priority)) {
                        case V::Queued:
                            s->last_served_ms = now;  // a cache must not evict what peers are downloading
                            return pump_uploads();
                        case V::Busy: return reject(core::RejectReason::Busy);
                        case V::NotHeld: return reject(core::RejectReason::NotHeld);
                        case V::Banned: return reject(core::RejectReason::Banned);
                    }
                    return;
                }
                if constexpr (std::is_same_v<T, wire::MsgCancel>) {
                    if (s) uploads_.cancel(c.id(), cookie(*s, m.segment));
                    return;
                }
                if (!s) return;  // a patch we do not take part in
                if constexpr (std::is_same_v<T, wire::MsgHave>) {
                    // Answer a peer's first Have with ours, even if we sent one
                    // before it took part in this patch (it ignored that one).
                    if (p.heard.insert(s->vm.id).second) p.told.erase(s->vm.id);
                    send_have(p, *s);
                    if (!s->dl || s->dl->complete()) return;
                    auto bf = Bitfield::from_bytes(m.bitfield, s->dl->segment_count());
                    if (!bf) return c.close("have: bitfield does not fit the manifest");
                    s->dl->add_peer(c.id(), class_of(p), now);
                    s->dl->peer_bitfield(c.id(), *bf);
                } else if constexpr (std::is_same_v<T, wire::MsgHaveOne>) {
                    if (!s->dl || s->dl->complete()) return;
                    if (m.segment >= s->dl->segment_count()) return c.close("have-one: segment out of range");
                    s->dl->peer_has(c.id(), m.segment);
                } else if constexpr (std::is_same_v<T, wire::MsgData>) {
                    return handle_data(p, *s, m.segment, m.offset, m.data);
                } else if constexpr (std::is_same_v<T, wire::MsgReject>) {
                    if (!s->dl) return;
                    if (m.reason < 1 || m.reason > 4) return c.close("reject: unknown reason");
                    log::debug("request_rejected", {{"peer", c.remote()}, {"seg", m.segment}, {"reason", unsigned(m.reason)}});
                    s->partial.erase({c.id(), m.segment});
                    if (m.reason == std::uint8_t(core::RejectReason::Busy))
                        ++s->stats.busy_from[static_cast<int>(class_of(p))];
                    s->dl->rejected(c.id(), m.segment, static_cast<core::RejectReason>(m.reason), now);
                }
                pump_requests(*s);
            }
        },
        *msg);
}

void Node::handle_data(Peer& p, Swarm& s, std::uint32_t seg, std::uint32_t offset, ByteView data) {
    auto cid = p.conn->id();
    // Only bytes we asked this peer for; late chunks of a cancelled request are dropped.
    if (!s.dl || !s.dl->is_requested(cid, seg)) return;
    auto& buf = s.partial[{cid, seg}];
    std::uint32_t len = s.store->segment_length(seg);
    if (offset != buf.size() || buf.size() + data.size() > len) {
        s.partial.erase({cid, seg});
        return p.conn->close("data: chunk out of order or past the segment's end");
    }
    if (buf.empty()) buf.reserve(len);
    buf.insert(buf.end(), data.begin(), data.end());
    s.stats.bytes_from[static_cast<int>(class_of(p))] += data.size();
    download_bucket_.spend(loop_.now_ms(), data.size());
    s.dl->progress(cid, loop_.now_ms());
    if (buf.size() < len) return;
    Bytes whole = std::move(buf);
    s.partial.erase({cid, seg});
    segment_arrived(p, s, seg, std::move(whole));
}

void Node::segment_arrived(Peer& p, Swarm& s, std::uint32_t seg, Bytes data) {
    auto cid = p.conn->id();
    auto now = loop_.now_ms();
    bool valid = bool(wire::check_segment(s.vm.manifest, seg, data));
    actions_.clear();
    if (!valid) {
        ++s.stats.segments_rejected;
        s.stats.banned.insert(to_hex(p.conn->peer().key));
        log::warn("segment_rejected", {{"seg", seg}, {"peer", p.conn->remote()}, {"key", key_prefix(p.conn->peer().key)},
                                       {"action", "banned for this patch"}});
        s.dl->segment_done(cid, seg, false, actions_);
    } else {
        if (auto st = s.store->write(seg, data); !st) {
            log::error("store_write_failed", {{"seg", seg}, {"error", st.error()}});
            s.dl->rejected(cid, seg, core::RejectReason::Busy, now);  // ask again later
        } else {
            // Batch the fdatasync: every 16 segments here, and on every tick.
            if (s.store->unsynced() >= 16) sync_store(s);
            ++s.stats.segments_verified;
            s.stats.bytes_downloaded += data.size();
            s.dl->segment_done(cid, seg, true, actions_);
            for (auto& [id, other] : peers_)
                if (other.conn->ready() && other.told.count(s.vm.id))
                    send_msg(other, wire::MsgHaveOne{s.vm.id, seg});
        }
    }
    run_actions(s, actions_);
    pump_requests(s);
    if (!s.announced) announce(s);
    if (s.dl->complete()) finish(s);
}

void Node::run_actions(Swarm& s, std::vector<core::Action>& actions) {
    for (auto& a : actions) {
        auto it = peers_.find(a.peer);
        if (it == peers_.end() || !it->second.conn->ready()) continue;
        if (a.kind == core::Action::Request) {
            log::debug("request", {{"seg", a.segment}, {"source", core::to_string(class_of(it->second))}});
            send_msg(it->second, wire::MsgRequest{s.vm.id, a.segment});
        } else {
            s.partial.erase({a.peer, a.segment});
            send_msg(it->second, wire::MsgCancel{s.vm.id, a.segment});
        }
    }
    actions.clear();
}

// fdatasync runs on libuv's thread pool, so the loop keeps moving bytes while
// the disk catches up; segments become durable in the have file when it ends.
void Node::sync_store(Swarm& s) {
    if (s.syncing || !s.store || s.store->unsynced() == 0) return;
    s.syncing = true;
    auto store = s.store;
    auto snapshot = std::make_shared<Bitfield>(store->held());
    auto have = std::make_shared<Bytes>(snapshot->to_bytes());
    auto result = std::make_shared<Status>();
    std::weak_ptr<bool> alive = alive_;
    Hash32 id = s.vm.id;
    transfer::run_blocking(
        loop_, [store, have, result] { *result = store->sync_snapshot(*have); },
        [this, alive, store, snapshot, result, id] {
            if (auto a = alive.lock(); !a || !*a) return;
            Swarm* sw = swarm(id);
            if (!sw || sw->store != store) return;
            sw->syncing = false;
            if (*result) store->set_durable(*snapshot);
            else log::error("store_sync_failed", {{"error", result->error()}});
            if (sw->finishing) finish(*sw);
        });
}

void Node::finish(Swarm& s) {
    if (!s.stats.completed_ms) s.stats.completed_ms = loop_.now_ms();
    s.finishing = true;
    if (!s.store->durable_all()) return sync_store(s);  // finish() again when the sync ends
    s.finishing = false;
    Status st = s.out_path.empty() ? Status{} : s.store->export_to(s.out_path);
    announce(s);
    if (s.on_complete) {
        auto cb = std::move(s.on_complete);
        s.on_complete = nullptr;
        cb(st);
    }
}

// ---- uploads ----

std::uint64_t Node::cookie(const Swarm& s, std::uint32_t seg) { return std::uint64_t{s.index} << 32 | seg; }

void Node::pump_requests(Swarm& s) {
    if (!s.dl || s.dl->complete() || stopping_ || s.paused) return;
    auto now = loop_.now_ms();
    if (!download_bucket_.ready(now)) return;  // the tick tries again
    // Under a download limit, keep about one second's worth of segments asked
    // for: what is requested arrives at the holder's speed, whatever the bucket says.
    std::uint64_t cap = opts_.download.max_requests_total;
    if (opts_.download_rate)
        cap = std::clamp<std::uint64_t>(opts_.download_rate / s.vm.manifest.segment_size, 1, cap);
    s.dl->set_max_requests_total(static_cast<std::uint32_t>(cap));
    actions_.clear();
    s.dl->pump(now, actions_);
    run_actions(s, actions_);
}

void Node::pump_uploads() {
    auto now = loop_.now_ms();
    std::size_t buffered = 0;
    for (auto& [id, p] : peers_) buffered += p.conn->queued_bytes();
    auto writable = [this, &buffered](core::PeerId id) {
        if (buffered >= opts_.upload_buffer) return false;
        auto it = peers_.find(id);
        return it != peers_.end() && it->second.conn->ready() &&
               it->second.conn->queued_bytes() < transfer::Connection::kHighWater;
    };
    while (auto item = uploads_.next(now, writable)) {
        auto sid = static_cast<std::uint32_t>(item->what >> 32);
        auto seg = static_cast<std::uint32_t>(item->what);
        Swarm* s = sid < swarm_by_index_.size() ? swarm(swarm_by_index_[sid]) : nullptr;
        if (!s) continue;
        serve_one(peers_.at(item->peer), *s, seg);
        uploads_.sent(now, s->store->segment_length(seg));
        buffered += s->store->segment_length(seg);
    }
}

void Node::serve_one(Peer& p, Swarm& s, std::uint32_t seg) {
    Bytes data;
    if (auto st = s.store->read(seg, data); !st) {
        log::warn("store_read_failed", {{"seg", seg}, {"error", st.error()}});
        send_msg(p, wire::MsgReject{s.vm.id, seg, std::uint8_t(core::RejectReason::NotHeld)});
        return;
    }
    if (opts_.fault_corrupt_uploads && !data.empty()) data[data.size() / 2] ^= 0x5A;
    if (s.superseed) s.superseed->served(seg, loop_.now_ms());
    for (std::size_t off = 0; off < data.size(); off += wire::kMaxChunk) {
        std::size_t n = std::min(wire::kMaxChunk, data.size() - off);
        send_msg(p, wire::MsgData{s.vm.id, seg, static_cast<std::uint32_t>(off), ByteView(data).subspan(off, n)});
    }
    s.stats.bytes_uploaded += data.size();
    s.last_served_ms = loop_.now_ms();
}

void Node::on_writable(transfer::Connection&) { pump_uploads(); }

// ---- time ----

void Node::tick() {
    auto now = loop_.now_ms();
    std::vector<transfer::Connection*> stale;
    for (auto& [id, p] : peers_)
        if (!p.conn->ready() && !p.conn->closing() && now - p.conn->created_ms() > opts_.handshake_timeout_ms)
            stale.push_back(p.conn.get());
    for (auto* c : stale) c->close("handshake timed out");
    pump_uploads();  // sends held back by the rate limit
    if (now - last_member_ms_ >= 20 * 60 * 1000) announce_member();
    if (!opts_.watch.empty() && now - last_watch_ms_ >= 30'000) check_watched();
    // Keep a few connections even with nothing to fetch, to hear announcements.
    if (by_key_.size() + dialing_.size() < opts_.gossip_peers && !stopping_) {
        if (contacts_.empty() && now - last_join_ms_ >= 2'000) join_gossip();
        std::vector<const wire::Contact*> pick;
        for (auto& [k, c] : contacts_)
            if (!by_key_.count(k) && !dialing_.count(k)) pick.push_back(&c);
        // Own domain first (locality), then random order among equals.
        std::sort(pick.begin(), pick.end(), [this](auto* a, auto* b) {
            return (a->domain == self_.domain) > (b->domain == self_.domain);
        });
        for (std::size_t i = 0; i < pick.size() && by_key_.size() + dialing_.size() < opts_.gossip_peers; ++i)
            dial(pick[i]->host, pick[i]->port, pick[i]->key, pick[i]->role, pick[i]->domain);
    }

    for (auto& [id, s] : swarms_) {
        if (s.dl && !s.dl->complete()) {
            actions_.clear();
            s.dl->expire(now, actions_);
            run_actions(s, actions_);
            pump_requests(s);
            if (now - s.last_lookup_ms >= opts_.lookup_interval_ms) lookup(s);
        }
        sync_store(s);
        if (now - s.sample_ms >= 1'000) {  // rates, smoothed over a few seconds
            double secs = double(now - s.sample_ms) / 1000.0;
            double down = double(s.stats.bytes_downloaded - s.sample_down) / secs;
            double up = double(s.stats.bytes_uploaded - s.sample_up) / secs;
            s.rate_down = s.sample_ms ? 0.5 * s.rate_down + 0.5 * down : down;
            s.rate_up = s.sample_ms ? 0.5 * s.rate_up + 0.5 * up : up;
            s.sample_down = s.stats.bytes_downloaded;
            s.sample_up = s.stats.bytes_uploaded;
            s.sample_ms = now;
        }
        // Refresh the record when what we hold changed, and well before readers
        // consider it stale (they drop records issued over an hour ago).
        std::uint32_t held = s.store->held().count();
        bool changed = held != s.announced_held && now - s.last_announce_ms >= 2'000;
        bool aging = now - s.last_announce_ms >= 20 * 60 * 1000;
        if (held > 0 && (changed || aging)) announce(s);
    }
}

NodeStatus Node::status() const {
    NodeStatus st;
    st.key = self_.key;
    st.role = self_.role;
    st.domain = self_.domain;
    st.listen_port = listen_port();
    st.dht_port = dht_port();
    st.peers = by_key_.size();
    st.dht_nodes = dht_ ? dht_->good_nodes() : 0;
    st.upload_peers = uploads_.active_peers();
    st.contacts = contacts_.size();
    st.announces_received = announces_received_;
    st.announces_rejected = announces_rejected_;
    st.upload_rate_limit = opts_.upload_rate;
    st.download_rate_limit = opts_.download_rate;
    if (dht_) st.dht = dht_->stats();
    for (auto& [id, s] : swarms_) {
        SwarmStatus w;
        w.id = id;
        w.name = s.vm.manifest.name;
        w.version = s.vm.manifest.version;
        w.total_size = s.vm.manifest.total_size;
        w.segments = s.store->held().size();
        w.held = s.store->held().count();
        w.downloading = s.dl.has_value();
        w.paused = s.paused;
        w.complete = s.store->complete() && !s.finishing && s.store->durable_all();  // exported, durable
        w.rate_down = s.rate_down;
        w.rate_up = s.rate_up;
        w.out_path = s.out_path;
        w.last_served_ms = s.last_served_ms;
        w.stats = s.stats;
        st.swarms.push_back(std::move(w));
    }
    return st;
}

std::vector<Hash32> Node::swarm_ids() const {
    std::vector<Hash32> ids;
    for (auto& [id, s] : swarms_) ids.push_back(id);
    return ids;
}

Status Node::pause(const Hash32& id) {
    Swarm* s = swarm(id);
    if (!s) return err("no patch " + wire::short_hex(id) + " here");
    if (!s->dl || s->dl->complete()) return err("patch " + wire::short_hex(id) + " is not downloading");
    s->paused = true;
    return {};
}

Status Node::resume(const Hash32& id) {
    Swarm* s = swarm(id);
    if (!s) return err("no patch " + wire::short_hex(id) + " here");
    s->paused = false;
    pump_requests(*s);
    return {};
}

Status Node::remove(const Hash32& id) {
    auto it = swarms_.find(id);
    if (it == swarms_.end()) return err("no patch " + wire::short_hex(id) + " here");
    Swarm& s = it->second;
    if (s.announced && dht_) {
        dht_->withdraw(dht::holder_key(self_.domain, id), s.value_id);
        if (self_.role != Role::Peer) dht_->withdraw(dht::global_holder_key(id), s.value_id);
    }
    // Requests queued with us for it are dropped as their turn comes (no swarm).
    for (auto& [cid, p] : peers_) {
        p.told.erase(id);
        if (s.dl)
            for (std::uint32_t seg = 0; seg < s.dl->segment_count(); ++seg)
                if (s.dl->is_requested(cid, seg)) send_msg(p, wire::MsgCancel{id, seg});
    }
    std::string dir = s.dir;
    swarm_by_index_[s.index] = Hash32{};  // the index is never reused
    swarms_.erase(it);
    if (!dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        if (ec) return err("cannot delete " + dir + ": " + ec.message());
    }
    return {};
}

void Node::shutdown(std::function<void()> done) {
    if (stopping_) return;
    stopping_ = true;
    if (timer_) timer_->stop();
    for (auto& [id, s] : swarms_)  // last chance to make written segments durable
        if (auto st = s.store->sync(); !st) log::error("store_sync_failed", {{"error", st.error()}});
    if (dht_) {
        for (auto t : watch_listens_) dht_->cancel_listen(t);
        dht_->withdraw(dht::holder_key(self_.domain, Hash32{}), member_value_id_);
        if (self_.role != Role::Peer) dht_->withdraw(dht::global_holder_key(Hash32{}), member_value_id_);
    }
    for (auto& [id, s] : swarms_)
        if (s.announced && dht_) {
            dht_->withdraw(dht::holder_key(self_.domain, s.vm.id), s.value_id);
            if (self_.role != Role::Peer) dht_->withdraw(dht::global_holder_key(s.vm.id), s.value_id);
        }
    std::vector<transfer::Connection*> open;
    for (auto& [id, p] : peers_) open.push_back(p.conn.get());
    for (auto* c : open) c->close("node shutting down");
    listener_.reset();
    if (dht_) dht_->shutdown(std::move(done));
    else loop_.post(std::move(done));
}

}  // namespace ps::node
