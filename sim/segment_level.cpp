// Segment level: every host runs the node's own protocol engine (core::Engine)
// over simulated links, with nothing of the protocol re-typed here.
//
// The driver does what node/node.cpp does, with simulated I/O:
//  - Messages (Have, HaveOne, Request, Cancel, Reject) reach the other engine
//    after the link's one-way delay: delay_local_ms inside a domain,
//    delay_remote_ms between domains and to the origin.
//  - A Serve hands the segment to the connection from holder to receiver; a
//    connection moves its segments one after another as one flow of the
//    flow-level network (each host's upload and download capacity shared
//    among its flows), and each segment arrives as Data one delay after its
//    last byte left. Store succeeds at once (segments in the simulator do not
//    lie), and the bytes queued on a connection are reported back to the
//    holder's engine as the node reports its socket queues.
//  - A Dial comes up one round trip later on both ends (or fails if the host
//    left); a Close tears the connection down on both ends.
//  - Lookup samples the directory (the DHT's holder keys: the own domain's
//    key, and the cross-domain key where the origin and super-nodes are), and
//    hands the holders to holders_found; the own domain's super-node is known
//    from membership records (domain_supers). Announce lists the host.
//  - Each engine is woken at its next_deadline(); nothing polls.
// core::SeedPolicy decides when a device stops serving, as the one-shot
// fetch's --seed-ratio/--seed-seconds do.
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>

#include "core/bitfield.hpp"
#include "core/engine.hpp"
#include "core/policy.hpp"
#include "sim/common.hpp"
#include "sim/levels.hpp"
#include "sim/random.hpp"

namespace ps::sim {

namespace {

enum : std::uint8_t { kFlowDone = FlowNet::kFlowDone, kWake = 1, kDeliver = 2, kDeadline = 3 };
enum : std::uint8_t { kNotYet, kDownloading, kSeeding, kGone };

const core::PatchId kPatch = [] {
    core::PatchId p{};
    p[0] = 0x5a;
    return p;
}();

core::NodeKey key_of(std::uint32_t x) {
    core::NodeKey k{};
    for (int i = 0; i < 4; ++i) k[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(x >> (8 * (3 - i)));
    k[4] = 1;  // never all-zero
    return k;
}
std::uint32_t host_of(const core::NodeKey& k) {
    std::uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x = x << 8 | k[static_cast<std::size_t>(i)];
    return x;
}

// Devices, super-nodes and the origin, each an engine while it takes part.
struct Host {
    std::uint32_t domain = 0;
    Role role = Role::Peer;
    std::uint8_t state = kNotYet;
    bool listed = false;  // in the directory (announced, and serves)
    Time arrive = 0, start = 0, done = 0;
    Time wake_at = 0;  // the pending deadline event, 0 = none
    std::uint64_t uploaded = 0, downloaded = 0;
    std::unique_ptr<core::Engine> eng;
    std::vector<std::uint32_t> conns;  // hosts connected to (either direction)
    std::uint32_t pos_dir = kNone, pos_global = kNone;
};

// Segment bytes per Data message, as the node sends them (wire::kMaxChunk):
// the receiver sees progress per chunk, not per segment.
constexpr std::uint32_t kChunk = 256 * 1024;

struct Chunk {
    std::uint32_t seg, off, len;
};

// One direction of a connection: chunks of the segments handed to it, sent in order.
struct Pipe {
    std::vector<Chunk> segs;
    std::size_t head = 0;
    std::uint64_t queued = 0;  // bytes handed and not yet through
    std::uint32_t flow = kNone;
};

// A message on its way.
struct Msg {
    enum Kind : std::uint8_t { Have, HaveOne, Request, Cancel, Reject, Data, Assign, Up, Delivered } kind;
    std::uint32_t from, to;
    std::uint32_t seg = 0;
    std::uint8_t reason = 0;
    Bytes bits;
    std::uint32_t off = 0, len = 0;  // Data: which bytes of the segment
};

struct Dir {
    std::vector<std::uint32_t> v;
};

class SegmentLevel {
public:
    SegmentLevel(const Scenario& s, const Population& p)
        : s_(s), pop_(p), n_(static_cast<std::uint32_t>(p.devices)), segs_(segment_count(s)),
          patch_(patch_bytes(s)), lookups_(stream(s.seed, Stream::Lookups)),
          seeds_(stream(s.seed, Stream::Downloads)) {}

    RunResult run() {
        setup();
        Arrivals arr = make_arrivals(s_, n_);
        online_ = make_online_times(s_, n_);
        begin(origin_);
        if (s_.super_at_release)
            for (std::uint32_t j = 0; j < super_of_.size(); ++j)
                if (super_of_[j] != kNone) begin(super_of_[j]);
        // Engines keep deadlines while they seed (record refreshes), so the
        // run ends when every device has its copy, or a week of simulated
        // time after the last request if some never do.
        give_up_ = (n_ ? arr.at[arr.order[n_ - 1]] : 0) + to_time(7 * 24 * 3600.0);
        flush_sends();
        run_events(
            q_, arr.order, [&arr](std::uint32_t d) { return arr.at[d]; }, now_, events_,
            [this](std::uint32_t d) {
                arrive(d);
                flush_sends();
            },
            [this](std::uint8_t kind, std::uint32_t id, std::uint32_t aux) {
                switch (kind) {
                    case kFlowDone: flow_done(id, aux); break;
                    case kDeliver: deliver_run(id, aux); break;
                    case kDeadline: deadline(id); break;
                    case kWake: wake(id); break;
                }
                flush_sends();
            },
            [this](bool arrivals_left) {
                arrivals_left_ = arrivals_left;
                return go_on();
            });
        return finish();
    }

private:
    core::Instant at() const { return core::Instant{now_ / 1000}; }
    std::uint64_t seg_bytes(std::uint32_t seg) const {
        return seg + 1 < segs_ ? kSegmentBytes : patch_ - kSegmentBytes * (segs_ - 1);
    }
    static std::uint64_t pipe_key(std::uint32_t holder, std::uint32_t receiver) {
        return std::uint64_t{holder} << 32 | receiver;
    }
    core::SourceClass class_for(std::uint32_t receiver, std::uint32_t holder) const {
        const Host& h = hosts_[holder];
        return core::classify(pop_.names[hosts_[receiver].domain], pop_.names[h.domain], h.role);
    }
    Time delay(std::uint32_t a, std::uint32_t b) const {
        bool local = hosts_[a].domain == hosts_[b].domain && hosts_[a].role != Role::Origin && hosts_[b].role != Role::Origin;
        return to_time((local ? s_.delay_local_ms : s_.delay_remote_ms) / 1000);
    }
    static std::uint32_t slots_of(std::uint32_t s) { return s == 0 ? std::numeric_limits<std::uint32_t>::max() : s; }
    const Capacity& cap_of(Role r) const { return r == Role::Peer ? s_.device : r == Role::Super ? s_.super : s_.origin; }
    bool serves(const Host& h) const { return h.role != Role::Peer || devices_serve(s_.model); }
    core::Holder holder(std::uint32_t y) const {
        const Host& h = hosts_[y];
        return core::Holder{key_of(y), h.role, pop_.names[h.domain], "sim", 1};
    }

    void setup() {
        auto has = super_domains(s_, pop_);
        const auto d = static_cast<std::uint32_t>(pop_.sizes.size());
        super_of_.assign(d, kNone);
        std::uint32_t supers = 0;
        for (std::uint32_t j = 0; j < d; ++j) supers += has[j] ? 1 : 0;
        origin_ = n_ + supers;
        hosts_.resize(origin_ + 1);
        for (std::uint32_t j = 0, k = n_; j < d; ++j) {
            for (std::uint64_t i = pop_.first[j]; i < pop_.first[j] + pop_.sizes[j]; ++i) hosts_[i].domain = j;
            if (has[j]) {
                super_of_[j] = k;
                hosts_[k].domain = j;
                hosts_[k].role = Role::Super;
                ++k;
            }
        }
        hosts_[origin_].role = Role::Origin;
        hosts_[origin_].domain = 0;  // unused: classify looks at the role first
        dir_.resize(d);
        imports_.assign(d, 0);
        const double mbit = 1e6 / 8;
        std::vector<FlowNet::Caps> caps{{s_.device.up_mbps * mbit, s_.device.down_mbps * mbit},
                                        {s_.super.up_mbps * mbit, s_.super.down_mbps * mbit},
                                        {s_.origin.up_mbps * mbit, s_.origin.down_mbps * mbit}};
        auto cls = [this](std::uint32_t h) { return h < n_ ? 0 : h == origin_ ? 2 : 1; };
        net_.emplace(origin_ + 1, std::move(caps), cls, origin_, to_time(s_.bin_minutes * 60), q_, kFlowDone);
    }

    core::EngineConfig config_for(std::uint32_t x) const {
        const Host& h = hosts_[x];
        const Capacity& c = cap_of(h.role);
        core::EngineConfig cfg;
        cfg.self = key_of(x);
        cfg.role = h.role;
        cfg.domain = pop_.names[h.domain];
        cfg.download = s_.download;
        cfg.uploads.slots = slots_of(c.slots);
        cfg.upload_buffer = c.buffer_kib ? std::uint64_t{c.buffer_kib} * 1024 : std::numeric_limits<std::uint64_t>::max();
        cfg.conn_high_water = std::uint64_t{s_.conn_buffer_kib} * 1024;
        cfg.max_peers = s_.max_peers;
        cfg.lookup_interval = static_cast<core::Millis>(s_.lookup_seconds * 1000);
        cfg.superseed_reserve = s_.superseed_reserve;
        cfg.peer_pace = s_.peer_pace;
        cfg.origin_reserve = s_.origin_reserve;
        cfg.coordinate_imports = s_.coordinate_imports;
        cfg.import_stall = s_.import_stall;
        cfg.uplink_capacity = static_cast<std::uint64_t>(c.up_mbps * 1e6 / 8);
        cfg.device_uplink = static_cast<std::uint64_t>(cap_of(Role::Peer).up_mbps * 1e6 / 8);
        // The origin super-seeds (as the node's does) only where devices pass
        // segments on; in client-server and caching runs every copy is its own.
        if (!devices_serve(s_.model)) cfg.superseed_reserve = cfg.origin_reserve = 0;
        return cfg;
    }

    // ---- directory (the DHT's view) ----
    void list(std::uint32_t x) {
        Host& h = hosts_[x];
        if (h.listed || !serves(h) || h.role == Role::Origin) return;
        h.listed = true;
        if (h.role == Role::Super) {
            h.pos_global = static_cast<std::uint32_t>(supers_dir_.v.size());
            supers_dir_.v.push_back(x);
            return;
        }
        h.pos_dir = static_cast<std::uint32_t>(dir_[h.domain].v.size());
        dir_[h.domain].v.push_back(x);
        h.pos_global = static_cast<std::uint32_t>(peers_dir_.v.size());
        peers_dir_.v.push_back(x);
    }
    void erase_from(Dir& d, std::uint32_t& pos, bool global) {
        std::uint32_t last = d.v.back();
        d.v[pos] = last;
        (global ? hosts_[last].pos_global : hosts_[last].pos_dir) = pos;
        d.v.pop_back();
        pos = kNone;
    }
    void unlist(std::uint32_t x) {
        Host& h = hosts_[x];
        if (!h.listed) return;
        h.listed = false;
        if (h.role == Role::Super) return erase_from(supers_dir_, h.pos_global, true);
        erase_from(dir_[h.domain], h.pos_dir, false);
        erase_from(peers_dir_, h.pos_global, true);
    }

    // What a lookup of the domain key and the cross-domain key would return,
    // sampled at random: the origin, the own domain's listed peers, other
    // domains' super-nodes (and devices, when the model lets devices see them).
    // As the node's: `far` (a device with an import share) also finds the
    // devices of two other domains (with remote_peers).
    void lookup(std::uint32_t x, bool far) {
        Host& h = hosts_[x];
        std::vector<core::Holder>& found = found_;
        found.clear();
        auto sample = [&](const Dir& d, std::size_t want) {
            for (std::size_t i = 0; i < want && !d.v.empty(); ++i) {
                std::uint32_t y = d.v[lookups_.below(d.v.size())];
                if (y != x) found.push_back(holder(y));
            }
        };
        found.push_back(holder(origin_));
        const bool device = h.role == Role::Peer;
        if (device && super_of_[h.domain] != kNone && hosts_[super_of_[h.domain]].listed)
            found.push_back(holder(super_of_[h.domain]));
        if (s_.remote_supers) sample(supers_dir_, 4);
        if (devices_serve(s_.model)) {
            if (s_.model == Model::P2pRandom) {
                if (device) sample(peers_dir_, s_.max_peers);
            } else {
                sample(dir_[h.domain], s_.max_peers);
                if (device && far && s_.remote_peers && dir_.size() > 1)
                    for (int i = 0; i < 2; ++i) {
                        auto d = static_cast<std::uint32_t>(lookups_.below(dir_.size() - 1));
                        sample(dir_[d >= h.domain ? d + 1 : d], 4);
                    }
            }
        }
        h.eng->holders_found(kPatch, found, true, at());
    }

    // ---- engines ----
    void begin(std::uint32_t x) {
        Host& h = hosts_[x];
        h.eng = std::make_unique<core::Engine>(config_for(x), seeds_.next());
        h.arrive = h.start = now_;
        if (h.role == Role::Origin) {
            h.state = kSeeding;
            h.eng->add_patch(kPatch, shape(), Bitfield(segs_, true), false, at());
        } else {
            h.state = kDownloading;
            if (h.role == Role::Super) ++supers_used_;
            if (h.role == Role::Peer && super_of_[h.domain] != kNone && hosts_[super_of_[h.domain]].state != kGone) {
                // Membership records name the own domain's super-node.
                core::Holder sup = holder(super_of_[h.domain]);
                h.eng->domain_supers(std::span<const core::Holder>(&sup, 1), at());
            }
            h.eng->add_patch(kPatch, shape(), Bitfield(segs_), true, at());
        }
        after(x);
    }
    core::PatchShape shape() const {
        return core::PatchShape{segs_, static_cast<std::uint32_t>(kSegmentBytes), patch_};
    }

    void arrive(std::uint32_t d) {
        std::uint32_t j = hosts_[d].domain;
        // A pull-through cache fetches the patch when its domain first asks.
        if (super_of_[j] != kNone && hosts_[super_of_[j]].state == kNotYet) begin(super_of_[j]);
        begin(d);
    }

    // Carries out x's actions, then sets its wake-up at the next deadline.
    void after(std::uint32_t x, bool ticking = false) {
        Host& h = hosts_[x];
        while (h.eng && !h.eng->actions().empty()) {
            // Action vectors circulate between the engines and spare_, so
            // that their capacity is reused (carry_out may recurse into after()).
            std::vector<core::EngineAction> batch;
            if (!spare_.empty()) {
                batch = std::move(spare_.back());
                spare_.pop_back();
            }
            std::swap(batch, h.eng->actions());
            for (auto& a : batch) carry_out(x, a, ticking);
            batch.clear();
            spare_.push_back(std::move(batch));
        }
        if (!h.eng) return;
        auto t = h.eng->next_deadline(at());
        if (!t) return;
        Time when = std::max<Time>(now_ + 1, t->ms * 1000);
        if (h.wake_at != 0 && h.wake_at <= when && h.wake_at > now_) return;  // an earlier wake-up is pending
        h.wake_at = when;
        q_.push(when, kDeadline, x);
    }

    void deadline(std::uint32_t x) {
        Host& h = hosts_[x];
        if (!h.eng || h.wake_at != now_) return;  // stale
        h.wake_at = 0;
        h.eng->tick(at());
        after(x, true);
    }

    // The run loop's stop condition (checked before each event).
    bool go_on() const { return (arrivals_left_ || completed_ < n_) && now_ <= give_up_; }

    // Messages due at the same time with consecutive ids (a HaveOne to every
    // peer, say) go into the queue as one event: ids first..first+aux. Nothing
    // else can sort between them (the queue orders by time, kind, id, and
    // later messages get larger ids), so they run in the order they would as
    // single events; deliver_run() checks for events of other kinds pushed at
    // the same time meanwhile, and counts each message as an event.
    void send(std::uint32_t from, std::uint32_t to, Msg m, Time extra = 0) {
        m.from = from;
        m.to = to;
        std::uint32_t id = next_msg_++;  // == msg_base_ + msgs_.size()
        msgs_.push_back(std::move(m));
        Time t = now_ + extra + delay(from, to);
        if (run_len_ > 0 && t == run_t_ && run_len_ <= EventQueue::kAuxMask) {
            ++run_len_;
            return;
        }
        flush_sends();
        run_t_ = t;
        run_first_ = id;
        run_len_ = 1;
    }
    void flush_sends() {
        if (run_len_ == 0) return;
        q_.push(run_t_, kDeliver, run_first_, run_len_ - 1);
        run_len_ = 0;
    }
    void deliver_run(std::uint32_t first, std::uint32_t more) {
        deliver(first);
        for (std::uint32_t k = 1; k <= more; ++k) {
            std::uint32_t id = first + k;
            // Stop where the single events would have been interrupted: an
            // earlier event pushed meanwhile, or the run's end.
            if (!q_.empty() && q_.top() < EventQueue::make(now_, kDeliver, id))
                return q_.push(now_, kDeliver, id, more - k);
            if (!go_on()) return;
            ++events_;
            deliver(id);
        }
    }

    void carry_out(std::uint32_t x, core::EngineAction& action, bool ticking) {
        namespace act = core::act;
        std::visit(
            [&](auto& a) {
                using T = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<T, act::SendHave>) {
                    send(x, to_host(a.conn), Msg{Msg::Have, 0, 0, 0, 0, std::move(a.bitfield)});
                } else if constexpr (std::is_same_v<T, act::SendHaveOne>) {
                    send(x, to_host(a.conn), Msg{Msg::HaveOne, 0, 0, core::idx(a.seg), 0, {}});
                } else if constexpr (std::is_same_v<T, act::SendRequest>) {
                    ++requests_;
                    send(x, to_host(a.conn), Msg{Msg::Request, 0, 0, core::idx(a.seg), 0, {}});
                } else if constexpr (std::is_same_v<T, act::SendCancel>) {
                    ++(ticking ? timeouts_ : cancels_);
                    send(x, to_host(a.conn), Msg{Msg::Cancel, 0, 0, core::idx(a.seg), 0, {}});
                } else if constexpr (std::is_same_v<T, act::SendReject>) {
                    if (a.reason == core::RejectReason::Busy) ++busy_;
                    send(x, to_host(a.conn), Msg{Msg::Reject, 0, 0, core::idx(a.seg), std::uint8_t(a.reason), {}});
                } else if constexpr (std::is_same_v<T, act::SendAssign>) {
                    send(x, to_host(a.conn), Msg{Msg::Assign, 0, 0, 0, 0, std::move(a.share)});
                } else if constexpr (std::is_same_v<T, act::Serve>) {
                    serve(x, to_host(a.conn), core::idx(a.seg));
                } else if constexpr (std::is_same_v<T, act::Store>) {
                    stored(x, to_host(a.conn), core::idx(a.seg));
                } else if constexpr (std::is_same_v<T, act::Dial>) {
                    dial(x, host_of(a.to.key));
                } else if constexpr (std::is_same_v<T, act::Close>) {
                    hang_up(x, to_host(a.conn));
                } else if constexpr (std::is_same_v<T, act::Lookup>) {
                    lookup(x, a.far);
                } else if constexpr (std::is_same_v<T, act::Announce>) {
                    if (a.held > 0) list(x);
                } else if constexpr (std::is_same_v<T, act::Completed>) {
                    complete(x);
                }
            },
            action);
    }
    static std::uint32_t to_host(core::ConnId c) { return static_cast<std::uint32_t>(core::raw(c)); }

    // ---- connections ----
    void dial(std::uint32_t x, std::uint32_t y) {
        // The handshake takes a round trip; both ends learn of it then.
        send(x, y, Msg{Msg::Up, 0, 0, 0, 0, {}}, delay(x, y));
    }
    void connected(std::uint32_t x, std::uint32_t y) {  // x dialed y, a round trip ago
        Host& hx = hosts_[x];
        Host& hy = hosts_[y];
        if (!hx.eng) return;
        if (!hy.eng || hy.state == kGone) {
            hx.eng->dial_failed(key_of(y), at());
            return after(x);
        }
        if (hx.eng->connected(key_of(y))) return after(x);
        hx.conns.push_back(y);
        hy.conns.push_back(x);
        bool kept = hx.eng->conn_up(core::ConnId{y}, identity(y), true, at());
        if (kept) hy.eng->conn_up(core::ConnId{x}, identity(x), false, at());
        after(x);
        after(y);
    }
    core::PeerIdentity identity(std::uint32_t y) const {
        return core::PeerIdentity{key_of(y), hosts_[y].role, pop_.names[hosts_[y].domain]};
    }
    // Ends the connection between x and y on both ends, and what it carried.
    void hang_up(std::uint32_t x, std::uint32_t y) {
        for (auto [a, b] : {std::pair{x, y}, std::pair{y, x}}) {
            auto it = pipes_.find(pipe_key(a, b));
            if (it != pipes_.end()) {
                if (it->second.flow != kNone)
                    hosts_[a].uploaded += static_cast<std::uint64_t>(net_->finish(it->second.flow, now_));
                drop_pipe(it);
            }
            auto& v = hosts_[a].conns;
            std::erase(v, b);
            if (hosts_[a].eng) {
                hosts_[a].eng->conn_down(core::ConnId{b}, at());
                after(a);
            }
        }
    }

    void deliver(std::uint32_t id) {
        Msg& slot = msgs_[id - msg_base_];
        Msg m = std::move(slot);
        slot.kind = Msg::Delivered;
        while (!msgs_.empty() && msgs_.front().kind == Msg::Delivered) {
            msgs_.pop_front();
            ++msg_base_;
        }
        if (m.kind == Msg::Up) return connected(m.from, m.to);
        Host& h = hosts_[m.to];
        if (!h.eng || !h.eng->has_conn(core::ConnId{m.from})) {
            if (m.kind == Msg::Data) wasted_ += m.len;
            return;
        }
        core::ConnId c{m.from};
        core::Segment seg{m.seg};
        auto t = at();
        switch (m.kind) {
            case Msg::Have: h.eng->on_have(c, kPatch, m.bits, t); break;
            case Msg::HaveOne: h.eng->on_have_one(c, kPatch, seg, t); break;
            case Msg::Request: h.eng->on_request(c, kPatch, seg, t); break;
            case Msg::Cancel: h.eng->on_cancel(c, kPatch, seg); break;
            case Msg::Reject: h.eng->on_reject(c, kPatch, seg, m.reason, t); break;
            case Msg::Assign: h.eng->on_assign(c, kPatch, m.bits, t); break;
            case Msg::Data: {
                auto v = h.eng->on_data(c, kPatch, seg, m.off, m.len, t);
                if (v != core::DataVerdict::Take && v != core::DataVerdict::TakeLast) wasted_ += m.len;
                break;
            }
            case Msg::Up:
            case Msg::Delivered: break;
        }
        after(m.to);
    }

    // ---- serving ----
    void serve(std::uint32_t y, std::uint32_t r, std::uint32_t seg) {
        auto key = pipe_key(y, r);
        auto [slot, fresh] = pipes_.try_emplace(key);
        Pipe& c = slot->second;
        if (fresh && !spare_chunks_.empty()) {  // a drained pipe's vector, its capacity kept
            c.segs = std::move(spare_chunks_.back());
            spare_chunks_.pop_back();
        }
        auto total = static_cast<std::uint32_t>(seg_bytes(seg));
        for (std::uint32_t off = 0; off < total; off += kChunk) c.segs.push_back({seg, off, std::min(kChunk, total - off)});
        c.queued += total;
        if (c.flow == kNone) {
            c.flow = net_->start(y, r, static_cast<double>(c.segs[c.head].len), now_, 0);
            if (flow_pipe_.size() <= c.flow) flow_pipe_.resize(c.flow + 1);
            flow_pipe_[c.flow] = key;
        }
        hosts_[y].eng->served(core::ConnId{r}, kPatch, core::Segment{seg}, c.queued, at());
    }

    // Pipes come and go with nearly every segment served: their chunk vectors are reused.
    void drop_pipe(std::unordered_map<std::uint64_t, Pipe>::iterator it) {
        it->second.segs.clear();
        spare_chunks_.push_back(std::move(it->second.segs));
        pipes_.erase(it);
    }

    void flow_done(std::uint32_t f, std::uint32_t version) {
        if (!net_->done_event(f, version, now_)) return;
        auto key = flow_pipe_[f];
        auto y = static_cast<std::uint32_t>(key >> 32), r = static_cast<std::uint32_t>(key);
        auto it = pipes_.find(key);
        Pipe& c = it->second;
        Chunk ch = c.segs[c.head++];
        c.queued -= ch.len;
        hosts_[y].uploaded += ch.len;
        if (s_.trace) trace_upload(y, r, ch.len);
        std::uint64_t left = c.queued;
        if (c.head < c.segs.size()) {
            net_->continue_with(f, static_cast<double>(c.segs[c.head].len), now_);
        } else {
            net_->finish(f, now_);
            drop_pipe(it);
        }
        send(y, r, Msg{Msg::Data, 0, 0, ch.seg, 0, {}, ch.off, ch.len});
        if (hosts_[y].eng) {
            hosts_[y].eng->writable(core::ConnId{r}, left, at());
            after(y);
        }
        if (hosts_[y].state == kSeeding && hosts_[y].role == Role::Peer && !keeps_seeding(y)) depart(y);
    }

    void stored(std::uint32_t r, std::uint32_t y, std::uint32_t seg) {
        Host& h = hosts_[r];
        std::uint64_t bytes = seg_bytes(seg);
        h.downloaded += bytes;
        if (s_.trace) trace_stored(r, y, seg);
        auto cls = class_for(r, y);
        bytes_by_class_[static_cast<int>(cls)] += bytes;
        if (cls >= core::SourceClass::OtherDomain) imports_[h.domain] += static_cast<double>(bytes) / static_cast<double>(patch_);
        h.eng->stored(core::ConnId{y}, kPatch, core::Segment{seg}, core::StoreOutcome::Stored, at());
    }

    void complete(std::uint32_t r) {
        Host& h = hosts_[r];
        if (h.state != kDownloading) return;
        h.done = now_;
        last_done_ = now_;
        if (h.role == Role::Super) {
            h.state = kSeeding;
            return;
        }
        ++completed_;
        completion_.push_back(static_cast<float>(static_cast<double>(now_ - h.arrive) / 1e6));
        auto pol = policy(r);
        h.state = kSeeding;
        if (!pol.keep_seeding(h.uploaded, h.downloaded, 0)) return depart_later(r);
        if (std::isfinite(pol.max_seconds)) q_.push(now_ + to_time(pol.max_seconds), kWake, r);
    }
    void wake(std::uint32_t d) {
        if (hosts_[d].state == kSeeding && hosts_[d].role == Role::Peer && !keeps_seeding(d)) depart(d);
    }
    // Leaves once the actions under way are carried out.
    void depart_later(std::uint32_t r) { q_.push(now_, kWake, r); }

    core::SeedPolicy policy(std::uint32_t d) const {
        const Host& h = hosts_[d];
        double took = static_cast<double>(h.done - h.start) / 1e6;
        return seed_policy(s_, online_[d], took, static_cast<double>(h.done - h.arrive) / 1e6);
    }
    bool keeps_seeding(std::uint32_t d) const {
        const Host& h = hosts_[d];
        return policy(d).keep_seeding(h.uploaded, h.downloaded, static_cast<double>(now_ - h.done) / 1e6);
    }

    // Leaves the swarm: unlisted, every connection hung up (what they were
    // carrying is lost), its engine gone.
    void depart(std::uint32_t x) {
        Host& h = hosts_[x];
        if (h.state == kGone) return;
        h.state = kGone;
        unlist(x);
        h.eng.reset();
        auto conns = h.conns;
        for (auto y : conns) hang_up(x, y);
        h.conns.clear();
    }

    // ---- Scenario::trace ----
    static std::string role_name(Role r) { return std::string(to_string(r)); }
    void trace_upload(std::uint32_t y, std::uint32_t r, std::uint32_t len) {
        const Host& h = hosts_[y];
        bool far = h.role == Role::Origin || hosts_[r].domain != h.domain;
        auto sec = static_cast<std::uint32_t>(now_ / 1'000'000);
        trace_up_[{sec, static_cast<std::uint8_t>(h.role), h.role == Role::Origin ? 0 : h.domain, far}] += len;
    }
    void trace_stored(std::uint32_t r, std::uint32_t y, std::uint32_t seg) {
        const Host& h = hosts_[r];
        const Host& from = hosts_[y];
        char line[160];
        std::snprintf(line, sizeof line, "%.3f,%s,%u,%s,%u,%u,%s,%s\n", static_cast<double>(now_) / 1e6,
                      pop_.names[h.domain].c_str(), r, role_name(h.role).c_str(), seg, y, role_name(from.role).c_str(),
                      from.role == Role::Origin ? "" : pop_.names[from.domain].c_str());
        trace_segments_ += line;
    }
    void trace_into(RunResult& r) const {
        r.trace_uploads = "second,role,domain,far,bytes\n";
        for (auto& [k, bytes] : trace_up_) {
            auto& [sec, role, dom, far] = k;
            r.trace_uploads += std::to_string(sec) + "," + role_name(static_cast<Role>(role)) + "," +
                               (static_cast<Role>(role) == Role::Origin ? std::string() : pop_.names[dom]) + "," +
                               (far ? "1" : "0") + "," + std::to_string(bytes) + "\n";
        }
        r.trace_segments = "seconds,domain,host,role,segment,from,from_role,from_domain\n" + trace_segments_;
    }

    RunResult finish() {
        RunResult r;
        if (s_.trace) trace_into(r);
        r.model = s_.model;
        r.level = Level::Segment;
        r.devices = n_;
        r.supers = supers_used_;
        r.patch_bytes = patch_;
        r.completed = completed_;
        r.source_bytes = static_cast<std::uint64_t>(std::llround(net_->origin_bytes()));
        r.source_bytes_client_server_equivalent = std::uint64_t{n_} * patch_;
        r.bytes_by_class = bytes_by_class_;
        for (auto b : bytes_by_class_) r.delivered_bytes += b;
        r.wasted_bytes = wasted_;
        r.bin_seconds = static_cast<double>(to_time(s_.bin_minutes * 60)) / 1e6;
        fill_source_load(r, net_->origin_bins());
        r.domain_size = pop_.sizes;
        r.domain_imports = imports_;
        r.events = events_;
        r.end_seconds = static_cast<double>(last_done_) / 1e6;
        r.requests = requests_;
        r.busy = busy_;
        r.cancels = cancels_;
        r.timeouts = timeouts_;
        fill_completion_stats(r, completion_);
        return r;
    }

    const Scenario& s_;
    const Population& pop_;
    const std::uint32_t n_;
    const std::uint32_t segs_;
    const std::uint64_t patch_;
    Rng lookups_;
    Rng seeds_;
    EventQueue q_;
    std::optional<FlowNet> net_;
    Time now_ = 0, last_done_ = 0, give_up_ = 0;
    bool arrivals_left_ = true;
    Time run_t_ = 0;  // send(): the messages not yet queued, ids run_first_.. (run_len_ of them)
    std::uint32_t run_first_ = 0, run_len_ = 0;
    std::uint64_t events_ = 0;

    std::vector<Host> hosts_;
    std::vector<float> online_;
    std::vector<std::uint32_t> super_of_;
    std::uint32_t origin_ = 0;
    std::vector<Dir> dir_;  // listed devices by domain
    Dir peers_dir_;         // listed devices, all domains
    Dir supers_dir_;        // listed super-nodes (the cross-domain key)
    std::unordered_map<std::uint64_t, Pipe> pipes_;  // (holder, receiver); only looked up, never walked
    std::vector<std::vector<Chunk>> spare_chunks_;  // drained pipes' vectors
    std::vector<std::uint64_t> flow_pipe_;
    std::deque<Msg> msgs_;  // on their way: message id msg_base_ + i, Delivered once delivered
    std::uint32_t msg_base_ = 0, next_msg_ = 0;
    std::vector<std::vector<core::EngineAction>> spare_;
    std::vector<core::Holder> found_;  // lookup()'s answer, its capacity reused

    std::vector<double> imports_;
    std::array<std::uint64_t, core::kSourceClasses> bytes_by_class_{};
    std::uint64_t completed_ = 0, supers_used_ = 0, wasted_ = 0;
    std::uint64_t requests_ = 0, busy_ = 0, cancels_ = 0, timeouts_ = 0;
    std::map<std::tuple<std::uint32_t, std::uint8_t, std::uint32_t, bool>, std::uint64_t> trace_up_;
    std::string trace_segments_;
    std::vector<float> completion_;
};

}  // namespace

RunResult run_segment_level(const Scenario& s, const Population& p) { return SegmentLevel(s, p).run(); }

}  // namespace ps::sim
