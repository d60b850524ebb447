// The node: a thin libuv driver of core::Engine. It decodes frames and feeds
// the engine events, carries out the actions the engine returns (send, dial,
// close, serve and store segments on the thread pool, DHT lookups and
// records), and wakes at the engine's next deadline. What the node does on its
// own is I/O and housekeeping: connections, the segment store and its syncs,
// exporting a finished patch, rates for `status`. How it finds and is found
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

std::uint64_t held_bytes(const Bitfield& held, const wire::Manifest& m) {
    const std::uint32_t n = held.size();
    if (n == 0) return 0;
    std::uint64_t bytes = std::uint64_t(held.count() - (held.test(n - 1) ? 1 : 0)) * m.segment_size;
    return bytes + (held.test(n - 1) ? m.segment_length(n - 1) : 0);
}

namespace {

core::EngineConfig engine_config(const NodeOptions& o, const transfer::Identity& id) {
    core::EngineConfig c;
    c.self = id.key;
    c.role = id.role;
    c.domain = id.domain;
    c.download = o.download;
    c.uploads = o.uploads;
    c.upload_rate = o.upload_rate;
    c.uplink_capacity = o.uplink_capacity;
    c.device_uplink = o.device_uplink;
    c.download_rate = o.download_rate;
    c.upload_buffer = o.upload_buffer;
    c.conn_high_water = transfer::Connection::kHighWater;
    c.max_peers = o.max_peers;
    c.lookup_interval = o.lookup_interval_ms;
    c.superseed_reserve = o.superseed_reserve_ms;
    c.fault_ignore_requests = o.fault_ignore_requests;
    return c;
}

}  // namespace

Node::Node(transfer::Loop& loop, NodeOptions opts, transfer::Identity identity)
    : loop_(loop), opts_(std::move(opts)), self_(std::move(identity)),
      engine_(engine_config(opts_, self_), crypto::random_u64()) {
    if (opts_.advertise_host.empty()) opts_.advertise_host = opts_.listen_host;
    opts_.download.local_first = self_.role == Role::Peer;
}

void Node::set_upload_slots(std::uint32_t slots) {
    opts_.uploads.slots = slots;
    engine_.set_upload_slots(slots);
}

void Node::set_rate_limits(std::uint64_t upload, std::uint64_t download) {
    engine_.set_rates(now(), upload, download);
    opts_.upload_rate = upload;
    opts_.download_rate = download;
    run_actions();
}

void Node::set_uploads_refused(bool refused) {
    engine_.set_uploads_refused(refused);
    run_actions();
}

std::uint64_t Node::uploads_refused_by_policy() const { return engine_.refused_by_policy(); }

Node::~Node() {
    *alive_ = false;
    portmap_cancel_->store(true);
    portmap_join();  // a request or the deletion under way: bounded by their timeouts
    peers_.clear();  // connections close their handles; no callbacks reach us any more
}

Status Node::start() {
    // The DHT first, so that its sockets get low fd numbers: OpenDHT 2.4
    // select()s on them, and select() cannot watch descriptors past 1023.
    std::weak_ptr<bool> alive = alive_;
    transfer::Loop* loop = &loop_;
    auto post = [loop, alive](std::function<void()> fn) {
        loop->post([alive, fn = std::move(fn)] {
            if (auto a = alive.lock(); a && *a) fn();
        });
    };
    auto dht_cfg = opts_.dht;  // storing nodes and readers check manifests under our trust
    if (opts_.trust) {
        live_trust_ = std::make_shared<SharedTrust>(*opts_.trust);
        if (!dht_cfg.manifest_check) dht_cfg.manifest_check = manifest_version_check(live_trust_);
        if (!dht_cfg.record_check) dht_cfg.record_check = record_cert_check(live_trust_);
        if (!dht_cfg.statement_check) dht_cfg.statement_check = statement_signer_check(live_trust_);
    }
    auto d = dht::Node::start(dht_cfg, post);
    if (!d) return err("dht: " + d.error());
    dht_ = std::move(*d);
    auto l = transfer::Listener::start(loop_, opts_.listen_host, opts_.listen_port, self_, *this,
                                       [this](std::unique_ptr<transfer::Connection> c) { accept(std::move(c)); });
    if (!l) return std::move(l).take_error();
    listener_ = std::move(*l);
    deadline_ = std::make_unique<transfer::Timer>(loop_);
    house_ = std::make_unique<transfer::Timer>(loop_);
    house_->start(1'000, 1'000, [this] { housekeeping(); });
    join_timer_ = std::make_unique<transfer::Timer>(loop_);
    join_.bootstrap = opts_.dht.bootstrap;
    join_.since_ms = loop_.now_ms();
    if (!join_.bootstrap.empty()) {
        join_.state = DhtJoin::State::Connecting;
        ping_bootstrap();
    }
    member_value_id_ = crypto::random_u64();
    announce_member();
    join_gossip();
    lan_start();
    fetch_statements();
    for (auto& name : opts_.watch) {
        auto t = dht_->listen(dht::manifest_key(name), [this](std::vector<Bytes> values, bool expired) {
            if (!expired)
                for (auto& v : values) on_announce(nullptr, v);
        }, dht::ValueKind::Manifest);
        if (t) watch_listens_.push_back(t);
    }
    check_watched();
    run_actions();
    return {};
}

std::uint16_t Node::listen_port() const { return listener_ ? listener_->port() : 0; }
std::uint16_t Node::dht_port() const { return dht_ ? dht_->port() : 0; }

const SwarmStats* Node::stats(const Hash32& id) const { return engine_.stats(id); }

Node::Swarm* Node::swarm(const Hash32& id) {
    auto it = swarms_.find(id);
    return it == swarms_.end() ? nullptr : &it->second;
}

void Node::add_swarm(Swarm s, bool download) {
    s.value_id = crypto::random_u64();
    s.downloading = download;
    auto id = s.vm.id;
    const auto& m = s.vm.manifest;
    auto held = s.store->held();
    swarms_[id] = std::move(s);
    engine_.add_patch(id, core::PatchShape{m.segment_count(), m.segment_size, m.total_size}, held, download, now());
    run_actions();
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
    add_swarm(std::move(s), false);
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
    add_swarm(std::move(s), true);
    return {};
}

// ---- the engine's actions ----

void Node::run_actions() {
    // Carrying out an action can feed the engine more events (and so more
    // actions): take the batch, and go round until nothing is left.
    std::vector<core::EngineAction> batch;
    while (!engine_.actions().empty()) {
        batch.clear();
        std::swap(batch, engine_.actions());
        for (auto& a : batch) carry_out(a);
    }
    arm();
}

Node::Peer* Node::ready_peer(core::ConnId c) {
    auto it = peers_.find(core::raw(c));
    return it != peers_.end() && it->second.conn->ready() ? &it->second : nullptr;
}

void Node::carry_out(core::EngineAction& action) {
    namespace act = core::act;
    std::visit(
        [&](auto& a) {
            using T = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<T, act::SendHave>) {
                if (Peer* p = ready_peer(a.conn)) send_msg(*p, wire::MsgHave{a.patch, std::move(a.bitfield)});
            } else if constexpr (std::is_same_v<T, act::SendHaveOne>) {
                if (Peer* p = ready_peer(a.conn)) send_msg(*p, wire::MsgHaveOne{a.patch, core::idx(a.seg)});
            } else if constexpr (std::is_same_v<T, act::SendRequest>) {
                log::debug("request", {{"seg", core::idx(a.seg)}, {"source", core::to_string(a.from)}});
                if (Peer* p = ready_peer(a.conn)) {
                    send_msg(*p, wire::MsgRequest{a.patch, core::idx(a.seg)});
                    if (Swarm* sw = swarm(a.patch))
                        sw->asked[{core::raw(a.conn), core::idx(a.seg)}] = {loop_.now_ms(), a.from};
                }
            } else if constexpr (std::is_same_v<T, act::SendCancel>) {
                if (Swarm* s = swarm(a.patch)) {
                    s->partial.erase({core::raw(a.conn), core::idx(a.seg)});
                    s->asked.erase({core::raw(a.conn), core::idx(a.seg)});
                }
                if (Peer* p = ready_peer(a.conn)) send_msg(*p, wire::MsgCancel{a.patch, core::idx(a.seg)});
            } else if constexpr (std::is_same_v<T, act::SendAssign>) {
                if (Peer* p = ready_peer(a.conn)) send_msg(*p, wire::MsgAssign{a.patch, std::move(a.share)});
            } else if constexpr (std::is_same_v<T, act::SendReject>) {
                if (Peer* p = ready_peer(a.conn))
                    send_msg(*p, wire::MsgReject{a.patch, core::idx(a.seg), std::uint8_t(a.reason)});
            } else if constexpr (std::is_same_v<T, act::Serve>) {
                serve_segment(a);
            } else if constexpr (std::is_same_v<T, act::Store>) {
                store_segment(a);
            } else if constexpr (std::is_same_v<T, act::Dial>) {
                dial(a.to);
            } else if constexpr (std::is_same_v<T, act::Close>) {
                if (auto it = peers_.find(core::raw(a.conn)); it != peers_.end()) it->second.conn->close(a.why == core::CloseWhy::Duplicate ? transfer::CloseCode::Duplicate : transfer::CloseCode::ProtocolViolation, a.reason);
            } else if constexpr (std::is_same_v<T, act::Lookup>) {
                lookup(a.patch, a.far);
            } else if constexpr (std::is_same_v<T, act::Announce>) {
                if (Swarm* s = swarm(a.patch)) announce(*s, a.held, a.segments);
            } else if constexpr (std::is_same_v<T, act::Banned>) {
                log::warn("segment_rejected", {{"seg", core::idx(a.seg)}, {"key", key_prefix(a.key)},
                                               {"action", "banned for this patch"}});
            } else if constexpr (std::is_same_v<T, act::Completed>) {
                if (Swarm* s = swarm(a.patch)) finish(*s);
            }
        },
        action);
}

// Hashing and the write run on libuv's thread pool; the engine hears the
// outcome on the loop thread.
void Node::store_segment(const core::act::Store& a) {
    Swarm* s = swarm(a.patch);
    if (!s) return;
    auto key = std::make_pair(core::raw(a.conn), core::idx(a.seg));
    auto it = s->partial.find(key);
    if (it == s->partial.end()) return engine_.stored(a.conn, a.patch, a.seg, core::StoreOutcome::IoError, now());
    auto data = std::make_shared<Bytes>(std::move(it->second));
    s->partial.erase(it);
    auto store = s->store;
    auto outcome = std::make_shared<SegmentStore::WriteOutcome>();
    auto error = std::make_shared<std::string>();
    std::weak_ptr<bool> alive = alive_;
    transfer::run_blocking(
        loop_, [store, data, outcome, error, seg = core::idx(a.seg)] { *outcome = store->check_write(seg, *data, *error); },
        [this, alive, store, outcome, error, a] {
            if (auto live = alive.lock(); !live || !*live) return;
            Swarm* sw = swarm(a.patch);
            if (!sw || sw->store != store) return;
            auto result = core::StoreOutcome::Stored;
            if (*outcome == SegmentStore::WriteOutcome::BadHash) {
                result = core::StoreOutcome::BadHash;
            } else if (*outcome == SegmentStore::WriteOutcome::IoError) {
                log::error("store_write_failed", {{"seg", core::idx(a.seg)}, {"error", *error}});
                result = core::StoreOutcome::IoError;
            } else {
                store->mark_written(core::idx(a.seg));
                if (store->unsynced() >= 16) sync_store(*sw);  // batched fdatasync
            }
            fetch_timed(*sw, core::raw(a.conn), core::idx(a.seg), result == core::StoreOutcome::Stored);
            engine_.stored(a.conn, a.patch, a.seg, result, now());
            run_actions();
        });
}

// A request answered (stored) or given up: its time goes into the histogram of its source class.
void Node::fetch_timed(Swarm& s, std::uint64_t conn, std::uint32_t seg, bool stored) {
    auto it = s.asked.find({conn, seg});
    if (it == s.asked.end()) return;
    if (stored)
        fetch_seconds_[static_cast<int>(it->second.second)].observe(double(loop_.now_ms() - it->second.first) / 1000.0);
    s.asked.erase(it);
}

void Node::serve_segment(const core::act::Serve& a) {
    Swarm* s = swarm(a.patch);
    if (!s) return engine_.serve_failed(a.conn, a.patch, a.seg, now());
    auto store = s->store;
    auto data = std::make_shared<Bytes>();
    auto st = std::make_shared<Status>();
    std::weak_ptr<bool> alive = alive_;
    transfer::run_blocking(
        loop_, [store, data, st, seg = core::idx(a.seg)] { *st = store->check_read(seg, *data); },
        [this, alive, store, data, st, a] {
            if (auto live = alive.lock(); !live || !*live) return;
            Swarm* sw = swarm(a.patch);
            if (!*st) {
                log::warn("store_read_failed", {{"seg", core::idx(a.seg)}, {"error", st->error()}});
                if (sw && sw->store == store) store->forget(core::idx(a.seg));  // never served again
                engine_.serve_failed(a.conn, a.patch, a.seg, now());
                return run_actions();
            }
            Peer* p = ready_peer(a.conn);
            if (p) {
                if (opts_.fault_corrupt_uploads && !data->empty()) (*data)[data->size() / 2] ^= 0x5A;
                for (std::size_t off = 0; off < data->size(); off += wire::kMaxChunk) {
                    std::size_t n = std::min(wire::kMaxChunk, data->size() - off);
                    send_msg(*p, wire::MsgData{a.patch, core::idx(a.seg), static_cast<std::uint32_t>(off),
                                               ByteView(*data).subspan(off, n)});
                }
            }
            engine_.served(a.conn, a.patch, a.seg, p ? p->conn->queued_bytes() : 0, now());
            run_actions();
        });
}

// The engine's next deadline, computed once per loop turn however many
// events came in (it walks every download).
void Node::arm() {
    if (arm_posted_ || stopping_ || !deadline_) return;
    arm_posted_ = true;
    std::weak_ptr<bool> alive = alive_;
    loop_.post([this, alive] {
        if (auto live = alive.lock(); !live || !*live) return;
        arm_posted_ = false;
        if (stopping_) return;
        auto t = engine_.next_deadline(now());
        if (!t) return deadline_->stop();
        deadline_->start(t->ms > loop_.now_ms() ? t->ms - loop_.now_ms() : 0, 0, [this] {
            engine_.tick(now());
            run_actions();
        });
    });
}

// ---- connections ----

// An inbound connection, its handshake under way. Beyond the caps it is
// dropped (which closes it) before any crypto is spent on it.
void Node::accept(std::unique_ptr<transfer::Connection> c) {
    if (stopping_ || peers_.size() >= opts_.max_peers * 2) return;
    auto ep = transfer::parse_endpoint(c->remote());
    std::string ip = ep ? ep->first : c->remote();
    bool loopback = ip.rfind("127.", 0) == 0 || ip == "::1" || ip.rfind("::ffff:127.", 0) == 0;
    if (opts_.max_inbound_per_address > 0 && (opts_.cap_loopback || !loopback)) {
        std::size_t from_ip = 0;
        for (auto& [id, p] : peers_) from_ip += p.inbound_ip == ip;
        if (from_ip >= opts_.max_inbound_per_address) {
            log::debug("inbound_refused", {{"peer", c->remote()}, {"reason", "per-address cap"}});
            return;
        }
    }
    c->set_max_queued(opts_.max_queued_per_peer);
    auto id = c->id();
    Peer& p = peers_[id];
    p.conn = std::move(c);
    p.inbound_ip = std::move(ip);
}

void Node::send_msg(Peer& p, const wire::Message& m) {
    scratch_.clear();
    wire::encode_message(m, scratch_);
    p.conn->send(scratch_);
}

void Node::on_ready(transfer::Connection& c) {
    auto it = peers_.find(c.id());
    if (it == peers_.end()) return;
    Peer& p = it->second;
    const auto& who = c.peer();
    if (!admit_peer(c)) return;
    p.last_useful_ms = loop_.now_ms();
    p.up = engine_.conn_up(core::ConnId{c.id()}, core::PeerIdentity{who.key, who.role, who.domain}, c.dialer(), now());
    if (p.up && c.dialer())
        if (auto k = contacts_.find(who.key); k != contacts_.end()) {
            k->second.proven = true;
            k->second.failures = 0;
        }
    if (p.up) {
        log::debug("connected", {{"peer", c.remote()}, {"domain", who.domain}, {"role", to_string(who.role)},
                                 {"dialed", c.dialer()}});
        // Gossip first (the view and what we know), then the engine's Haves.
        auto actions = std::move(engine_.actions());
        engine_.actions().clear();
        send_msg(p, peers_msg());
        for (auto& [name, vm] : latest_) send_msg(p, wire::MsgAnnounce{vm.bytes});
        for (auto& [sid, st] : statements_) send_msg(p, wire::MsgStatement{st});
        if (!fresh_bytes_.empty()) send_msg(p, wire::MsgStatement{fresh_bytes_});
        for (auto& a : actions) engine_.actions().push_back(std::move(a));
    }
    run_actions();
}

void Node::on_closed(transfer::Connection& c, transfer::CloseCode code, const std::string& reason) {
    auto id = c.id();
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    // Protocol violations and failed handshakes are always worth a line; the
    // ordinary ends of a connection only when tracing.
    if (transfer::ordinary(code)) log::debug("connection_closed", {{"peer", c.remote()}, {"reason", reason}});
    else log::warn("connection_closed", {{"peer", c.remote()}, {"reason", reason}});
    for (auto& [sid, s] : swarms_) {
        std::erase_if(s.partial, [id](auto& e) { return e.first.first == id; });
        std::erase_if(s.asked, [id](auto& e) { return e.first.first == id; });
    }
    bool was_up = it->second.up;
    auto dialed = it->second.dialed;
    peers_.erase(it);  // destroys c
    if (was_up) engine_.conn_down(core::ConnId{id}, now());
    else if (dialed) {
        engine_.dial_failed(*dialed, now());
        if (code != transfer::CloseCode::Duplicate) contact_failed(*dialed);  // a duplicate did come up
    }
    run_actions();
}

void Node::on_message(transfer::Connection& c, ByteView frame) {
    auto pit = peers_.find(c.id());
    if (pit == peers_.end() || !pit->second.up) return;
    Peer& p = pit->second;
    auto msg = wire::decode_message(frame);
    if (!msg) return c.close(transfer::CloseCode::ProtocolViolation, msg.error());
    if (opts_.fault_on_message) opts_.fault_on_message(*msg);
    if (!std::holds_alternative<wire::MsgKeepalive>(*msg)) p.last_useful_ms = loop_.now_ms();
    core::ConnId cid{c.id()};
    auto t = now();
    std::visit(
        [&](auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, wire::MsgKeepalive>) {
            } else if constexpr (std::is_same_v<T, wire::MsgBye>) {
                c.close(transfer::CloseCode::Goodbye, "peer said goodbye: " + m.reason);
            } else if constexpr (std::is_same_v<T, wire::MsgAnnounce>) {
                on_announce(&p, m.manifest);
            } else if constexpr (std::is_same_v<T, wire::MsgPeers>) {
                on_peers(p, m.contacts);
            } else if constexpr (std::is_same_v<T, wire::MsgStatement>) {
                (void)on_statement(&p, m.statement);
            } else if constexpr (std::is_same_v<T, wire::MsgHave>) {
                engine_.on_have(cid, m.manifest, m.bitfield, t);
            } else if constexpr (std::is_same_v<T, wire::MsgAssign>) {
                engine_.on_assign(cid, m.manifest, m.share, t);
            } else if constexpr (std::is_same_v<T, wire::MsgHaveOne>) {
                engine_.on_have_one(cid, m.manifest, core::Segment{m.segment}, t);
            } else if constexpr (std::is_same_v<T, wire::MsgRequest>) {
                engine_.on_request(cid, m.manifest, core::Segment{m.segment}, t);
            } else if constexpr (std::is_same_v<T, wire::MsgCancel>) {
                engine_.on_cancel(cid, m.manifest, core::Segment{m.segment});
            } else if constexpr (std::is_same_v<T, wire::MsgReject>) {
                log::debug("request_rejected", {{"peer", c.remote()}, {"seg", m.segment}, {"reason", unsigned(m.reason)}});
                if (Swarm* s = swarm(m.manifest)) s->partial.erase({c.id(), m.segment});
                engine_.on_reject(cid, m.manifest, core::Segment{m.segment}, m.reason, t);
            } else if constexpr (std::is_same_v<T, wire::MsgData>) {
                auto v = engine_.on_data(cid, m.manifest, core::Segment{m.segment}, m.offset,
                                         static_cast<std::uint32_t>(m.data.size()), t);
                if (v != core::DataVerdict::Take && v != core::DataVerdict::TakeLast) return;
                Swarm* s = swarm(m.manifest);
                if (!s) return;
                auto& buf = s->partial[{c.id(), m.segment}];
                if (buf.empty()) buf.reserve(s->store->segment_length(m.segment));
                buf.insert(buf.end(), m.data.begin(), m.data.end());
            }
        },
        *msg);
    run_actions();
}

void Node::on_writable(transfer::Connection& c) {
    auto it = peers_.find(c.id());
    if (it == peers_.end() || !it->second.up) return;
    engine_.writable(core::ConnId{c.id()}, c.queued_bytes(), now());
    run_actions();
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

// The background scrub, one step a second (from housekeeping): about
// scrub_rate bytes of one patch's held segments re-checked on the thread pool,
// patches in turn. A damaged segment is dropped as a failed read would be.
void Node::scrub() {
    if (scrub_running_ || opts_.scrub_rate == 0 || swarms_.empty()) return;
    auto it = swarms_.upper_bound(scrub_last_);
    if (it == swarms_.end()) it = swarms_.begin();
    scrub_last_ = it->first;
    scrub_running_ = true;
    auto store = it->second.store;
    auto held = std::make_shared<Bitfield>(store->held());
    auto step = std::make_shared<SegmentStore::ScrubStep>();
    std::weak_ptr<bool> alive = alive_;
    Hash32 id = it->first;
    transfer::run_blocking(
        loop_, [store, held, step, rate = opts_.scrub_rate] { *step = store->scrub_step(*held, rate); },
        [this, alive, store, step, id] {
            if (auto a = alive.lock(); !a || !*a) return;
            scrub_running_ = false;
            Swarm* sw = swarm(id);
            if (!sw || sw->store != store) return;
            for (auto seg : step->bad) {
                if (!store->held().test(seg)) continue;
                log::warn("scrub_dropped", {{"seg", seg}, {"patch", wire::short_hex(id)}});
                ++scrub_dropped_;
                store->forget(seg);
                engine_.serve_failed(core::ConnId{0}, id, core::Segment{seg}, now());  // no connection: just not held
            }
            run_actions();
        });
}

void Node::finish(Swarm& s) {
    s.finishing = true;
    if (!s.store->durable_all()) return sync_store(s);  // finish() again when the sync ends
    s.finishing = false;
    Status st = s.out_path.empty() ? Status{} : s.store->export_to(s.out_path);
    if (s.on_complete) {
        auto cb = std::move(s.on_complete);
        s.on_complete = nullptr;
        cb(st);
    }
}

// ---- time ----

// The driver's own chores, once a second: handshakes that never finish, the
// membership record, watched names, a few connections kept for gossip, syncs
// and rates. Protocol timing is the engine's (its deadline timer).
void Node::housekeeping() {
    auto t = loop_.now_ms();
    std::vector<transfer::Connection*> stale;
    for (auto& [id, p] : peers_)
        if (!p.conn->ready() && !p.conn->closing() && t - p.conn->created_ms() > opts_.handshake_timeout_ms)
            stale.push_back(p.conn.get());
    for (auto* c : stale) c->close(transfer::CloseCode::HandshakeTimeout, "handshake timed out");
    watch_dht();
    check_reachability();
    portmap_tick();
    lan_tick();
    refresh_freshness();
    close_idle(t);
    std::erase_if(dials_, [t](auto& e) { return e.second.empty() || t - e.second.back() >= 60'000; });
    if (t - last_member_ms_ >= 20 * 60 * 1000) announce_member();
    if (!opts_.watch.empty() && t - last_watch_ms_ >= 30'000) check_watched();
    // Keep a few connections even with nothing to fetch, to hear announcements.
    auto open = [this] { return engine_.peer_count() + engine_.dial_count(); };
    if (open() < opts_.gossip_peers && !stopping_) {
        if (contacts_.empty() && t - last_join_ms_ >= 2'000) join_gossip();
        std::vector<const wire::Contact*> pick;
        std::vector<crypto::PublicKey> refused;  // at an address dialled too often: a failure each
        for (auto& [k, known] : contacts_) {
            if (!engine_.may_dial(k) || known.retry_ms > t) continue;
            if (dial_allowed(known.c.host + ":" + std::to_string(known.c.port), false)) pick.push_back(&known.c);
            else refused.push_back(k);
        }
        for (auto& k : refused) contact_failed(k);
        // Own domain first (locality), then random order among equals; but
        // one connection outside the domain when there is none, so that a
        // domain whose super-node is down still hears announcements.
        std::stable_sort(pick.begin(), pick.end(), [this](auto* a, auto* b) {
            return (a->domain == self_.domain) > (b->domain == self_.domain);
        });
        bool outside = false;
        for (auto& [id, p] : peers_) outside |= p.up && p.conn->peer().domain != self_.domain;
        // (another domain's super-node rather than the origin, which has better to do)
        auto far = std::find_if(pick.begin(), pick.end(),
                                [this](auto* c) { return c->domain != self_.domain && c->role != Role::Origin; });
        if (far == pick.end())
            far = std::find_if(pick.begin(), pick.end(), [this](auto* c) { return c->domain != self_.domain; });
        if (!outside && far != pick.end()) std::rotate(pick.begin(), far, far + 1);
        for (std::size_t i = 0; i < pick.size() && open() < opts_.gossip_peers; ++i) {
            core::Holder h{pick[i]->key, pick[i]->role, pick[i]->domain, pick[i]->host, pick[i]->port};
            engine_.note_dial(h);
            dial(h);
        }
    }
    scrub();
    for (auto& [id, s] : swarms_) {
        sync_store(s);
        const SwarmStats* st = engine_.stats(id);
        if (!st || t - s.sample_ms < 1'000) continue;
        // Rates, smoothed over a few seconds.
        double secs = double(t - s.sample_ms) / 1000.0;
        double down = double(st->bytes_downloaded - s.sample_down) / secs;
        double up = double(st->bytes_uploaded - s.sample_up) / secs;
        s.rate_down = s.sample_ms ? 0.5 * s.rate_down + 0.5 * down : down;
        s.rate_up = s.sample_ms ? 0.5 * s.rate_up + 0.5 * up : up;
        s.sample_down = st->bytes_downloaded;
        s.sample_up = st->bytes_uploaded;
        s.sample_ms = t;
    }
    run_actions();
}

// Authenticated connections whose peer said nothing useful for the idle
// timeout: a squatter holding slots costs it at most that long.
void Node::close_idle(std::uint64_t t) {
    if (opts_.idle_timeout_ms == 0) return;
    std::vector<transfer::Connection*> idle;
    for (auto& [id, p] : peers_)
        if (p.conn->ready() && t - p.last_useful_ms > opts_.idle_timeout_ms) idle.push_back(p.conn.get());
    for (auto* c : idle)
        c->close(transfer::CloseCode::IdleTimeout,
                 "idle for " + std::to_string(opts_.idle_timeout_ms / 1000) + " s (idle timeout)");
}

NodeStatus Node::status() const {
    NodeStatus st;
    st.key = self_.key;
    st.role = self_.role;
    st.domain = self_.domain;
    st.listen_port = listen_port();
    st.dht_port = dht_port();
    st.peers = engine_.peer_count();
    for (auto& [id, p] : peers_) st.queued_bytes += p.conn->queued_cost();
    st.dht_nodes = dht_ ? dht_->good_nodes() : 0;
    st.upload_peers = engine_.upload_peers();
    st.contacts = contacts_.size();
    st.announces_received = announces_received_;
    st.announces_rejected = announces_rejected_;
    st.upload_rate_limit = opts_.upload_rate;
    st.download_rate_limit = opts_.download_rate;
    if (dht_) st.dht = dht_->stats();
    st.dht_join = join_;
    st.fetch_seconds = fetch_seconds_;
    st.now_ms = loop_.now_ms();
    st.segment_hashes = hashes_of_removed_;
    st.scrub_dropped = scrub_dropped_;
    st.enrollment_required = enrollment_required();
    st.statements_received = statements_received_;
    st.statements_rejected = statements_rejected_;
    st.statements_known = statements_.size();
    st.fresh_issued = fresh_issued_;
    st.freshness_rejected = freshness_rejected_;
    st.stale = opts_.freshness_window_s > 0 && (fresh_issued_ == 0 || unix_now() - fresh_issued_ > opts_.freshness_window_s);
    if (opts_.trust)
        for (auto& k : opts_.trust->keys()) (k.revoked ? st.revoked_keys : st.trusted_keys)++;
    st.peers_refused = peers_refused_;
    st.records_refused = records_refused_;
    st.reachability = reachability();
    st.advertise = (opts_.advertise_host.find(':') != std::string::npos ? "[" + opts_.advertise_host + "]"
                                                                         : opts_.advertise_host) +
                   ":" + std::to_string(advertised_port());
    if (mapping_) st.portmap = portmap::describe(*mapping_);
    st.portmap_error = portmap_error_;
    st.lan_discovery = lan_ != nullptr;
    st.lan = lan_counts_;
    st.seen_as = seen_as_;
    for (auto& [id, s] : swarms_) {
        st.segment_hashes += s.store->hashes();
        SwarmStatus w;
        w.id = id;
        w.name = s.vm.manifest.name;
        w.version = s.vm.manifest.version;
        w.total_size = s.vm.manifest.total_size;
        w.segments = s.store->held().size();
        w.held = s.store->held().count();
        w.held_bytes = held_bytes(s.store->held(), s.vm.manifest);
        w.downloading = s.downloading;
        w.paused = engine_.paused(id);
        w.complete = s.store->complete() && !s.finishing && s.store->durable_all();  // exported, durable
        w.rate_down = s.rate_down;
        w.rate_up = s.rate_up;
        w.out_path = s.out_path;
        w.last_served_ms = engine_.last_served(id);
        auto lv = engine_.lookup_view(id);
        w.lookup = LookupStatus{lv.holders, lv.lookups, lv.next_lookup};
        if (auto* ps = engine_.stats(id)) w.stats = *ps;
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
    if (!swarm(id)) return err("no patch " + wire::short_hex(id) + " here");
    if (!engine_.pause(id)) return err("patch " + wire::short_hex(id) + " is not downloading");
    return {};
}

Status Node::resume(const Hash32& id) {
    if (!swarm(id)) return err("no patch " + wire::short_hex(id) + " here");
    engine_.resume(id, now());
    run_actions();
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
    std::string dir = s.dir;
    hashes_of_removed_ += s.store->hashes();
    engine_.remove_patch(id);
    run_actions();  // the Cancels go out
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
    if (deadline_) deadline_->stop();
    if (house_) house_->stop();
    if (join_timer_) join_timer_->stop();
    for (auto& [id, s] : swarms_)  // last chance to make written segments durable
        if (auto st = s.store->sync(); !st) log::error("store_sync_failed", {{"error", st.error()}});
    if (dht_)
        for (auto t : watch_listens_) dht_->cancel_listen(t);
    withdraw_records();
    portmap_release();
    lan_.reset();
    std::vector<transfer::Connection*> open;
    for (auto& [id, p] : peers_) open.push_back(p.conn.get());
    for (auto* c : open) c->close(transfer::CloseCode::Shutdown, "node shutting down");
    listener_.reset();
    if (dht_) dht_->shutdown(std::move(done));
    else loop_.post(std::move(done));
}

}  // namespace ps::node
