// Segment level: the sans-IO core for real.
//
// Every downloading host (device or super-node) runs a core::Download: it
// learns holders through a modelled directory (the DHT: its own domain's key,
// and the cross-domain key where the origin and super-nodes advertise), hands
// each one to the core with core::classify's rung, and executes the Requests
// and Cancels the core emits. Every holder runs a core::Uploads: it queues,
// refuses (busy) or serves requests exactly as the node's serving side does,
// round-robin over its peers, handing segments to a connection while that
// connection has less than conn_buffer_kib queued (the node's high-water mark)
// and all its connections together less than the host's buffer_kib (the node's
// upload_buffer). Kernel socket buffers are not modelled: a byte counts as
// queued until it arrives, so a holder keeps fewer connections busy at once
// than a real one might.
// A connection moves its queued segments one after another as one flow of the
// flow-level network. A segment that arrives for a request the core still has
// open completes it (segment_done); anything else is dropped, as the node drops
// data it did not ask for. core::SeedPolicy decides when a device stops serving.
//
// Timers: the driver ticks each downloader every tick_ms (core::Download::tick:
// timeouts, back-offs, rung delays, endgame) and looks for more holders every
// lookup_seconds. Messages take no time; bytes take the time the flows give them.
#include <map>
#include <memory>
#include <optional>

#include "core/bitfield.hpp"
#include "core/download.hpp"
#include "core/policy.hpp"
#include "sim/common.hpp"
#include "sim/levels.hpp"
#include "sim/random.hpp"

namespace ps::sim {

namespace {

enum : std::uint8_t { kFlowDone = FlowNet::kFlowDone, kPump = 1, kTick = 2, kDeadline = 3 };
enum : std::uint8_t { kNotYet, kDownloading, kSeeding, kGone };

// Devices, super-nodes and the origin, each a core::Download (while it
// downloads) and a core::Uploads (once it holds something).
struct Host {
    std::uint32_t domain = 0;
    Role role = Role::Peer;
    std::uint8_t state = kNotYet;
    bool listed = false;  // in the directory (holds a segment and serves)
    bool pump_pending = false;
    Time arrive = 0, start = 0, done = 0, next_lookup = 0;
    std::uint64_t uploaded = 0, downloaded = 0;
    std::uint64_t queued = 0;  // bytes handed to its connections and not yet through
    std::unique_ptr<core::Download> dl;
    std::unique_ptr<core::Uploads> up;
    Bitfield held;
    std::vector<std::uint32_t> peers;     // holders this host has met as a downloader
    std::vector<std::uint32_t> watchers;  // downloaders that know this host
    std::uint32_t pos_dir = kNone, pos_global = kNone;
};

// One direction of a connection: segments handed to it, sent in order.
struct Conn {
    std::vector<std::uint32_t> segs;
    std::size_t head = 0;
    std::uint64_t queued = 0;  // bytes handed and not yet through
    std::uint32_t flow = kNone;
};

// Directory of holders with O(1) insert, erase and uniform pick.
struct Dir {
    std::vector<std::uint32_t> v;
};

class SegmentLevel {
public:
    SegmentLevel(const Scenario& s, const Population& p)
        : s_(s), pop_(p), n_(static_cast<std::uint32_t>(p.devices)), segs_(segment_count(s)),
          patch_(patch_bytes(s)), lookups_(stream(s.seed, Stream::Lookups)),
          dl_seeds_(stream(s.seed, Stream::Downloads).next()) {}

    RunResult run() {
        setup();
        Arrivals arr = make_arrivals(s_, n_);
        online_ = make_online_times(s_, n_);
        if (s_.super_at_release)
            for (std::uint32_t j = 0; j < super_of_.size(); ++j)
                if (super_of_[j] != kNone) begin(super_of_[j]);
        std::uint64_t ai = 0;
        while (ai < n_ || !q_.empty()) {
            if (ai < n_ && (q_.empty() || arr.at[arr.order[ai]] < q_.next_time())) {
                std::uint32_t d = arr.order[ai++];
                now_ = arr.at[d];
                ++events_;
                arrive(d);
                continue;
            }
            auto e = q_.pop();
            now_ = e.t;
            ++events_;
            switch (e.kind()) {
                case kFlowDone: flow_done(e.id(), e.aux()); break;
                case kPump: pump_event(e.id()); break;
                case kTick: tick(e.id()); break;
                case kDeadline: deadline(e.id()); break;
            }
        }
        return finish();
    }

private:
    std::uint64_t seg_bytes(std::uint32_t seg) const {
        return seg + 1 < segs_ ? kSegmentBytes : patch_ - kSegmentBytes * (segs_ - 1);
    }
    static std::uint64_t conn_key(std::uint32_t holder, std::uint32_t receiver) {
        return std::uint64_t{holder} << 32 | receiver;
    }
    core::SourceClass class_for(std::uint32_t receiver, std::uint32_t holder) const {
        const Host& h = hosts_[holder];
        return core::classify(pop_.names[hosts_[receiver].domain], pop_.names[h.domain], h.role);
    }
    static std::uint32_t slots_of(std::uint32_t s) { return s == 0 ? std::numeric_limits<std::uint32_t>::max() : s; }
    std::uint64_t buffer_of(Role r) const {
        const Capacity& c = r == Role::Peer ? s_.device : r == Role::Super ? s_.super : s_.origin;
        return c.buffer_kib ? std::uint64_t{c.buffer_kib} * 1024 : std::numeric_limits<std::uint64_t>::max();
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
        Host& o = hosts_[origin_];
        o.role = Role::Origin;
        o.domain = 0;  // unused: classify looks at the role first
        o.state = kSeeding;
        o.held = Bitfield(segs_, true);
        o.up = std::make_unique<core::Uploads>(core::UploadConfig{.slots = slots_of(s_.origin.slots)});
        dir_.resize(d);
        imports_.assign(d, 0);
        const double mbit = 1e6 / 8;
        std::vector<FlowNet::Caps> caps{{s_.device.up_mbps * mbit, s_.device.down_mbps * mbit},
                                        {s_.super.up_mbps * mbit, s_.super.down_mbps * mbit},
                                        {s_.origin.up_mbps * mbit, s_.origin.down_mbps * mbit}};
        auto cls = [this](std::uint32_t h) { return h < n_ ? 0 : h == origin_ ? 2 : 1; };
        net_.emplace(origin_ + 1, std::move(caps), cls, origin_, to_time(s_.bin_minutes * 60), q_, kFlowDone);
        tick_ = std::max<Time>(1, to_time(s_.tick_ms / 1000));
        high_water_ = std::uint64_t{s_.conn_buffer_kib} * 1024;
    }

    // ---- directory (the DHT's view) ----
    bool serves(const Host& h) const { return h.role == Role::Super || devices_serve(s_.model); }
    void list(std::uint32_t x) {
        Host& h = hosts_[x];
        if (h.listed || !serves(h) || h.role == Role::Origin) return;
        h.listed = true;
        if (!h.up) {
            auto slots = slots_of(h.role == Role::Super ? s_.super.slots : s_.device.slots);
            h.up = std::make_unique<core::Uploads>(core::UploadConfig{.slots = slots});
        }
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

    // Learns up to max_peers holders: what a lookup of the domain key and the
    // cross-domain key would return, sampled at random.
    void lookup(std::uint32_t x) {
        Host& h = hosts_[x];
        h.next_lookup = now_ + to_time(s_.lookup_seconds);
        if (!h.dl) return;
        auto room = [&] { return h.peers.size() < s_.max_peers; };
        auto meet = [&](std::uint32_t y) {
            if (y == x || h.dl->has_peer(y) || hosts_[y].state == kGone || !room()) return;
            connect(x, y);
        };
        auto sample = [&](const Dir& d, std::size_t want) {
            for (std::size_t tries = 0; tries < 2 * want && !d.v.empty() && room(); ++tries)
                meet(d.v[lookups_.below(d.v.size())]);
        };
        meet(origin_);
        const bool device = h.role == Role::Peer;
        if (device && super_of_[h.domain] != kNone && hosts_[super_of_[h.domain]].listed) meet(super_of_[h.domain]);
        if (s_.remote_supers) sample(supers_dir_, 4);
        if (devices_serve(s_.model)) {
            if (s_.model == Model::P2pRandom) {
                if (device) sample(peers_dir_, s_.max_peers);
            } else {
                sample(dir_[h.domain], s_.max_peers);
                if (device && s_.remote_peers) sample(peers_dir_, 4);
            }
        }
    }

    void connect(std::uint32_t x, std::uint32_t y) {
        Host& h = hosts_[x];
        h.peers.push_back(y);
        hosts_[y].watchers.push_back(x);
        h.dl->add_peer(y, class_for(x, y), ms());
        h.dl->peer_bitfield(y, hosts_[y].held);
    }

    // ---- downloading ----
    void arrive(std::uint32_t d) {
        std::uint32_t j = hosts_[d].domain;
        // A pull-through cache fetches the patch when its domain first asks.
        if (super_of_[j] != kNone && hosts_[super_of_[j]].state == kNotYet) begin(super_of_[j]);
        begin(d);
    }

    void begin(std::uint32_t x) {
        Host& h = hosts_[x];
        h.state = kDownloading;
        h.arrive = h.start = now_;
        h.held = Bitfield(segs_);
        core::DownloadConfig cfg = s_.download;
        cfg.local_first = h.role == Role::Peer;  // as the node sets it (node/node.cpp)
        h.dl = std::make_unique<core::Download>(segs_, cfg, dl_seeds_ ^ (std::uint64_t{x} * 0x9E3779B97F4A7C15ull));
        if (h.role == Role::Super) ++supers_used_;
        lookup(x);
        q_.push(now_ + tick_, kTick, x);
        pump(x);
    }

    void schedule_pump(std::uint32_t x) {
        Host& h = hosts_[x];
        if (h.pump_pending || !h.dl) return;
        h.pump_pending = true;
        q_.push(now_, kPump, x);
    }
    void pump_event(std::uint32_t x) {
        hosts_[x].pump_pending = false;
        pump(x);
    }
    void pump(std::uint32_t x) {
        Host& h = hosts_[x];
        if (!h.dl) return;
        std::vector<core::Action> acts;
        h.dl->pump(ms(), acts);
        run_actions(x, acts, false);
    }
    core::Millis ms() const { return now_ / 1000; }

    void tick(std::uint32_t x) {
        Host& h = hosts_[x];
        if (!h.dl) return;
        if (now_ >= h.next_lookup) lookup(x);
        std::vector<core::Action> acts;
        h.dl->expire(ms(), acts);
        run_actions(x, acts, true);
        if (!h.dl) return;
        acts.clear();
        h.dl->pump(ms(), acts);
        run_actions(x, acts, false);
        if (h.dl) q_.push(now_ + tick_, kTick, x);
    }

    void run_actions(std::uint32_t x, const std::vector<core::Action>& acts, bool expiring) {
        for (auto& a : acts) {
            auto y = static_cast<std::uint32_t>(a.peer);
            if (a.kind == core::Action::Cancel) {
                ++(expiring ? timeouts_ : cancels_);
                if (hosts_[y].up) hosts_[y].up->cancel(x, a.segment);
                continue;
            }
            ++requests_;
            Host& holder = hosts_[y];
            auto verdict = holder.up ? holder.up->request(x, a.segment, holder.held.test(a.segment), false)
                                     : core::Uploads::Verdict::NotHeld;
            switch (verdict) {
                case core::Uploads::Verdict::Queued: serve(y); break;
                case core::Uploads::Verdict::Busy:
                    ++busy_;
                    hosts_[x].dl->rejected(y, a.segment, core::RejectReason::Busy, ms());
                    schedule_pump(x);
                    break;
                case core::Uploads::Verdict::NotHeld:
                    hosts_[x].dl->rejected(y, a.segment, core::RejectReason::NotHeld, ms());
                    schedule_pump(x);
                    break;
                case core::Uploads::Verdict::Banned:
                    hosts_[x].dl->rejected(y, a.segment, core::RejectReason::Banned, ms());
                    break;
            }
        }
    }

    // ---- serving ----
    void serve(std::uint32_t y) {
        Host& h = hosts_[y];
        if (!h.up) return;
        auto writable = [&](core::PeerId p) {
            if (h.queued >= buffer_of(h.role)) return false;
            auto it = conns_.find(conn_key(y, static_cast<std::uint32_t>(p)));
            return it == conns_.end() || it->second.queued < high_water_;
        };
        while (auto item = h.up->next(ms(), writable)) {
            auto r = static_cast<std::uint32_t>(item->peer);
            auto seg = static_cast<std::uint32_t>(item->what);
            auto key = conn_key(y, r);
            Conn& c = conns_[key];
            c.segs.push_back(seg);
            c.queued += seg_bytes(seg);
            h.queued += seg_bytes(seg);
            if (c.flow == kNone) {
                c.flow = net_->start(y, r, static_cast<double>(seg_bytes(seg)), now_, 0);
                if (flow_conn_.size() <= c.flow) flow_conn_.resize(c.flow + 1);
                flow_conn_[c.flow] = key;
            }
            h.up->sent(ms(), seg_bytes(seg));
        }
    }

    void flow_done(std::uint32_t f, std::uint32_t version) {
        if (!net_->done_event(f, version, now_)) return;
        auto key = flow_conn_[f];
        auto y = static_cast<std::uint32_t>(key >> 32), r = static_cast<std::uint32_t>(key);
        auto it = conns_.find(key);
        Conn& c = it->second;
        std::uint32_t seg = c.segs[c.head++];
        std::uint64_t bytes = seg_bytes(seg);
        c.queued -= bytes;
        hosts_[y].queued -= bytes;
        hosts_[y].uploaded += bytes;
        if (c.head < c.segs.size()) {
            net_->continue_with(f, static_cast<double>(seg_bytes(c.segs[c.head])), now_);
        } else {
            net_->finish(f, now_);
            conns_.erase(it);
        }
        deliver(r, y, seg, bytes);
        serve(y);
        if (hosts_[y].state == kSeeding && hosts_[y].role == Role::Peer && !keeps_seeding(y)) depart(y);
    }

    void deliver(std::uint32_t r, std::uint32_t y, std::uint32_t seg, std::uint64_t bytes) {
        Host& h = hosts_[r];
        if (!h.dl || !h.dl->is_requested(y, seg)) {
            wasted_ += bytes;
            return;
        }
        std::vector<core::Action> acts;
        h.dl->segment_done(y, seg, true, acts);
        run_actions(r, acts, false);
        h.held.set(seg);
        h.downloaded += bytes;
        auto cls = class_for(r, y);
        bytes_by_class_[static_cast<int>(cls)] += bytes;
        if (cls >= core::SourceClass::OtherDomain) imports_[h.domain] += static_cast<double>(bytes) / static_cast<double>(patch_);
        list(r);
        // Have: every downloader that knows r hears of the new segment.
        auto& w = h.watchers;
        std::size_t keep = 0;
        for (std::size_t i = 0; i < w.size(); ++i) {
            Host& o = hosts_[w[i]];
            if (!o.dl || !o.dl->has_peer(r)) continue;  // finished, or forgot r
            w[keep++] = w[i];
            o.dl->peer_has(r, seg);
            schedule_pump(w[i]);
        }
        w.resize(keep);
        if (h.dl->complete()) return complete(r);
        schedule_pump(r);
    }

    void complete(std::uint32_t r) {
        Host& h = hosts_[r];
        h.done = now_;
        h.dl.reset();
        h.peers.clear();
        if (h.role == Role::Super) {
            h.state = kSeeding;
            list(r);
            return;
        }
        ++completed_;
        completion_.push_back(static_cast<float>(static_cast<double>(now_ - h.arrive) / 1e6));
        auto pol = policy(r);
        if (!pol.keep_seeding(h.uploaded, h.downloaded, 0)) return depart(r);
        h.state = kSeeding;
        if (std::isfinite(pol.max_seconds)) q_.push(now_ + to_time(pol.max_seconds), kDeadline, r);
    }

    core::SeedPolicy policy(std::uint32_t d) const {
        const Host& h = hosts_[d];
        double took = static_cast<double>(h.done - h.start) / 1e6;
        return seed_policy(s_, online_[d], took, static_cast<double>(h.done - h.arrive) / 1e6);
    }
    bool keeps_seeding(std::uint32_t d) const {
        const Host& h = hosts_[d];
        return policy(d).keep_seeding(h.uploaded, h.downloaded, static_cast<double>(now_ - h.done) / 1e6);
    }
    void deadline(std::uint32_t d) {
        if (hosts_[d].state == kSeeding && !keeps_seeding(d)) depart(d);
    }

    // Leaves the swarm: unlisted, forgotten by every downloader that knew it,
    // its connections closed (what they were carrying is lost).
    void depart(std::uint32_t x) {
        Host& h = hosts_[x];
        h.state = kGone;
        unlist(x);
        for (auto w : h.watchers) {
            Host& o = hosts_[w];
            if (!o.dl || !o.dl->has_peer(x)) continue;
            o.dl->remove_peer(x);
            schedule_pump(w);
        }
        h.watchers.clear();
        for (auto it = conns_.lower_bound(conn_key(x, 0)); it != conns_.end() && (it->first >> 32) == x;) {
            if (it->second.flow != kNone) hosts_[x].uploaded += static_cast<std::uint64_t>(net_->finish(it->second.flow, now_));
            it = conns_.erase(it);
        }
        h.queued = 0;
        h.up.reset();
    }

    RunResult finish() {
        RunResult r;
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
        r.end_seconds = static_cast<double>(now_) / 1e6;
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
    const std::uint64_t dl_seeds_;
    EventQueue q_;
    std::optional<FlowNet> net_;
    Time now_ = 0, tick_ = 0;
    std::uint64_t high_water_ = 0;
    std::uint64_t events_ = 0;

    std::vector<Host> hosts_;
    std::vector<float> online_;
    std::vector<std::uint32_t> super_of_;
    std::uint32_t origin_ = 0;
    std::vector<Dir> dir_;  // listed devices by domain
    Dir peers_dir_;         // listed devices, all domains
    Dir supers_dir_;        // listed super-nodes (the cross-domain key)
    std::map<std::uint64_t, Conn> conns_;  // (holder, receiver); ordered for reproducible departures
    std::vector<std::uint64_t> flow_conn_;

    std::vector<double> imports_;
    std::array<std::uint64_t, core::kSourceClasses> bytes_by_class_{};
    std::uint64_t completed_ = 0, supers_used_ = 0, wasted_ = 0;
    std::uint64_t requests_ = 0, busy_ = 0, cancels_ = 0, timeouts_ = 0;
    std::vector<float> completion_;
};

}  // namespace

RunResult run_segment_level(const Scenario& s, const Population& p) { return SegmentLevel(s, p).run(); }

}  // namespace ps::sim
