// The simulator's machinery shared by both levels: a deterministic event queue
// and a flow-level network.
//
// Network model: each host has an upload and a download capacity. A flow from
// s to r moves at min(up(s) / flows out of s, down(r) / flows into r): each end
// shares its capacity equally among its flows, and the slower end sets the
// pace. Rates are recomputed, and completion times moved, whenever a flow
// starts or ends at either end. (This is the usual local approximation of
// max-min fairness: capacity a flow cannot use at one end is not handed to the
// other flows of that end.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace ps::sim {

using Time = std::uint64_t;  // simulated microseconds since the release
inline constexpr Time kSecond = 1'000'000;
inline constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

inline Time to_time(double seconds) {
    if (!(seconds > 0)) return 0;
    double us = std::ceil(seconds * 1e6);
    return us >= 1.8e19 ? std::numeric_limits<Time>::max() / 2 : static_cast<Time>(us);
}

// Min-heap of events keyed by (time, kind, id, aux): a total order on every
// event that can be pending, so a run is reproducible whatever order the
// events were scheduled in. A 4-ary heap of 16-byte entries: a node's children
// share one cache line, which matters when millions of events are pending.
class EventQueue {
public:
    static constexpr std::uint32_t kAuxBits = 28;
    static constexpr std::uint32_t kAuxMask = (1u << kAuxBits) - 1;

    struct Event {
        Time t;
        std::uint64_t key;  // kind (4 bits) | id (32 bits) | aux (28 bits)
        std::uint8_t kind() const { return static_cast<std::uint8_t>(key >> 60); }
        std::uint32_t id() const { return static_cast<std::uint32_t>(key >> kAuxBits); }
        std::uint32_t aux() const { return static_cast<std::uint32_t>(key) & kAuxMask; }
        bool operator<(const Event& o) const { return t != o.t ? t < o.t : key < o.key; }
    };

    static Event make(Time t, std::uint8_t kind, std::uint32_t id, std::uint32_t aux = 0) {
        return Event{t, std::uint64_t{kind} << 60 | std::uint64_t{id} << kAuxBits | (aux & kAuxMask)};
    }
    void push(Time t, std::uint8_t kind, std::uint32_t id, std::uint32_t aux = 0) {
        Event e = make(t, kind, id, aux);
        std::size_t i = heap_.size();
        heap_.push_back(e);
        while (i > 0) {
            std::size_t parent = (i - 1) / 4;
            if (!(e < heap_[parent])) break;
            heap_[i] = heap_[parent];
            i = parent;
        }
        heap_[i] = e;
    }
    bool empty() const { return heap_.empty(); }
    std::size_t size() const { return heap_.size(); }
    Time next_time() const { return heap_.front().t; }
    const Event& top() const { return heap_.front(); }
    Event pop() {
        Event top = heap_.front();
        Event last = heap_.back();
        heap_.pop_back();
        const std::size_t n = heap_.size();
        if (n == 0) return top;
        std::size_t i = 0;
        for (;;) {
            std::size_t c = 4 * i + 1;
            if (c >= n) break;
            std::size_t best = c;
            std::size_t end = std::min(c + 4, n);
            for (std::size_t k = c + 1; k < end; ++k)
                if (heap_[k] < heap_[best]) best = k;
            if (!(heap_[best] < last)) break;
            heap_[i] = heap_[best];
            i = best;
        }
        heap_[i] = last;
        return top;
    }

private:
    std::vector<Event> heap_;
};

// Flows between hosts numbered [0, hosts). Capacities are given per host class
// (the caller's classify function), in bytes per second, 0 = unlimited.
class FlowNet {
public:
    using FlowId = std::uint32_t;
    static constexpr std::uint8_t kFlowDone = 0;  // event kind this class schedules

    struct Caps {
        double up_Bps;
        double down_Bps;
    };

    // `class_of(host)` -> index into `caps`. The origin's bytes are counted per
    // bin of `bin` microseconds.
    template <typename ClassOf>
    FlowNet(std::uint32_t hosts, std::vector<Caps> caps, ClassOf class_of, std::uint32_t origin, Time bin,
            EventQueue& q, std::uint8_t event_kind)
        : caps_(std::move(caps)), host_slot_(hosts, kNone), class_(hosts), origin_(origin), bin_(bin), q_(q),
          kind_(event_kind) {
        for (std::uint32_t h = 0; h < hosts; ++h) class_[h] = static_cast<std::uint8_t>(class_of(h));
        for (auto& c : caps_) {
            up_.push_back(c.up_Bps > 0 ? c.up_Bps / 1e6 : kInf);
            down_.push_back(c.down_Bps > 0 ? c.down_Bps / 1e6 : kInf);
        }
    }

    FlowId start(std::uint32_t src, std::uint32_t dst, double bytes, Time now, std::uint32_t tag) {
        FlowId f;
        if (!free_.empty()) {
            f = free_.back();
            free_.pop_back();
        } else {
            f = static_cast<FlowId>(flows_.size());
            flows_.emplace_back();
        }
        Flow& fl = flows_[f];
        fl = Flow{src, dst, bytes, 0, now, fl.version + 1, tag, 0, 0, true, false, 0};
        auto& su = slot(src).up;
        fl.pos_up = static_cast<std::uint32_t>(su.size());
        su.push_back(f);
        auto& sd = slot(dst).down;
        fl.pos_down = static_cast<std::uint32_t>(sd.size());
        sd.push_back(f);
        flows_[f].rate = -1;  // forces a schedule below
        rerate_host(src, now, true);
        rerate_host(dst, now, false);
        if (flows_[f].rate < 0) rerate(f, now);
        ++live_;
        return f;
    }

    // A completion event: true if the flow's bytes are through. A flow whose
    // rate fell since the event was scheduled is not done yet: its event is
    // moved to the new finishing time (slowing a flow down never pushes a new
    // event at once, which keeps the queue small).
    bool done_event(FlowId f, std::uint32_t version, Time now) {
        if (f >= flows_.size()) return false;
        Flow& fl = flows_[f];
        if (!fl.live || (fl.version & EventQueue::kAuxMask) != version) return false;
        fl.pending = false;
        Time fin = finish_time(fl);
        if (fin > now) {
            settle(fl, now);
            push(f, fin);
            return false;
        }
        settle(fl, now);
        if (fl.left > 0 && fl.src == origin_) count_origin(now, now + 1, fl.left);  // rounding remainder
        fl.left = 0;
        return true;
    }
    // Keeps the flow (and its share) and sends `bytes` more on it.
    void continue_with(FlowId f, double bytes, Time now) {
        Flow& fl = flows_[f];
        fl.left = bytes;
        fl.last = now;
        schedule(f, now);
    }
    // Ends a flow (its bytes are through, or it is cut short); returns the bytes
    // it moved since its last completion or continuation.
    double finish(FlowId f, Time now) {
        Flow& fl = flows_[f];
        double before = fl.left;
        settle(fl, now);
        double moved = before - fl.left;
        fl.live = false;
        fl.pending = false;
        ++fl.version;
        unlink(fl.src, fl.pos_up, true);
        unlink(fl.dst, fl.pos_down, false);
        std::uint32_t src = fl.src, dst = fl.dst;
        free_.push_back(f);
        --live_;
        rerate_host(src, now, true);
        rerate_host(dst, now, false);
        release(src);
        release(dst);
        return moved;
    }

    std::uint32_t tag(FlowId f) const { return flows_[f].tag; }
    std::uint32_t src(FlowId f) const { return flows_[f].src; }
    std::uint32_t dst(FlowId f) const { return flows_[f].dst; }
    double left(FlowId f) const { return flows_[f].left; }
    std::uint32_t flows_out(std::uint32_t h) const {
        return host_slot_[h] == kNone ? 0 : static_cast<std::uint32_t>(slots_[host_slot_[h]].up.size());
    }
    std::uint64_t live() const { return live_; }
    double origin_bytes() const { return origin_bytes_; }
    const std::vector<double>& origin_bins() const { return bins_; }

private:
    static constexpr double kInf = std::numeric_limits<double>::infinity();
    struct Flow {
        std::uint32_t src = 0, dst = 0;
        double left = 0;     // bytes still to move
        double rate = 0;     // bytes per microsecond
        Time last = 0;       // when `left` was last brought up to date
        std::uint32_t version = 0;
        std::uint32_t tag = 0;
        std::uint32_t pos_up = 0, pos_down = 0;
        bool live = false;
        bool pending = false;  // an event for this version is in the queue, due at `due`
        Time due = 0;
    };
    struct HostFlows {
        std::vector<FlowId> up, down;
    };

    HostFlows& slot(std::uint32_t h) {
        if (host_slot_[h] == kNone) {
            if (!free_slots_.empty()) {
                host_slot_[h] = free_slots_.back();
                free_slots_.pop_back();
            } else {
                host_slot_[h] = static_cast<std::uint32_t>(slots_.size());
                slots_.emplace_back();
            }
        }
        return slots_[host_slot_[h]];
    }
    void release(std::uint32_t h) {
        auto s = host_slot_[h];
        if (s == kNone || !slots_[s].up.empty() || !slots_[s].down.empty()) return;
        free_slots_.push_back(s);
        host_slot_[h] = kNone;
    }
    void unlink(std::uint32_t h, std::uint32_t pos, bool up) {
        auto& v = up ? slots_[host_slot_[h]].up : slots_[host_slot_[h]].down;
        FlowId moved = v.back();
        v[pos] = moved;
        v.pop_back();
        if (pos < v.size()) (up ? flows_[moved].pos_up : flows_[moved].pos_down) = pos;
    }

    double share_up(std::uint32_t h) const {
        double c = up_[class_[h]];
        return c == kInf ? kInf : c / static_cast<double>(slots_[host_slot_[h]].up.size());
    }
    double share_down(std::uint32_t h) const {
        double c = down_[class_[h]];
        return c == kInf ? kInf : c / static_cast<double>(slots_[host_slot_[h]].down.size());
    }

    // Recomputes the flows at h whose pace h's share can set. A host with
    // unlimited capacity on that side never does, so it is skipped whatever its
    // number of flows (the origin may carry many).
    void rerate_host(std::uint32_t h, Time now, bool up) {
        if (host_slot_[h] == kNone) return;
        if ((up ? up_ : down_)[class_[h]] == kInf) return;
        auto& list = up ? slots_[host_slot_[h]].up : slots_[host_slot_[h]].down;
        for (FlowId f : list) rerate(f, now);
    }
    void rerate(FlowId f, Time now) {
        Flow& fl = flows_[f];
        double r = std::min(share_up(fl.src), share_down(fl.dst));
        if (r == fl.rate) return;
        if (fl.rate > 0) settle(fl, now);
        fl.last = now;
        fl.rate = r;
        schedule(f, now);
    }
    Time finish_time(const Flow& fl) const {
        return fl.last + (fl.rate == kInf ? 0 : static_cast<Time>(std::ceil(fl.left / fl.rate)));
    }
    void push(FlowId f, Time t) {
        Flow& fl = flows_[f];
        fl.pending = true;
        fl.due = t;
        q_.push(t, kind_, f, fl.version);
    }
    // A pending event at or before the new finishing time can stay: it will
    // find the flow unfinished and move itself.
    void schedule(FlowId f, Time now) {
        Flow& fl = flows_[f];
        fl.last = now;
        Time t = finish_time(fl);
        if (fl.pending && fl.due <= t) return;
        ++fl.version;
        push(f, t);
    }
    void settle(Flow& fl, Time now) {
        if (now <= fl.last) return;
        double moved = fl.rate == kInf ? fl.left : std::min(fl.left, fl.rate * static_cast<double>(now - fl.last));
        if (fl.src == origin_ && moved > 0) count_origin(fl.last, now, moved);
        fl.left -= moved;
        fl.last = now;
    }
    void count_origin(Time t0, Time t1, double bytes) {
        origin_bytes_ += bytes;
        std::size_t b0 = t0 / bin_, b1 = (t1 - 1) / bin_;
        if (bins_.size() <= b1) bins_.resize(b1 + 1, 0.0);
        if (b0 == b1) {
            bins_[b0] += bytes;
            return;
        }
        double per_us = bytes / static_cast<double>(t1 - t0);
        for (std::size_t b = b0; b <= b1; ++b) {
            Time lo = std::max<Time>(t0, b * bin_), hi = std::min<Time>(t1, (b + 1) * bin_);
            bins_[b] += per_us * static_cast<double>(hi - lo);
        }
    }

    std::vector<Caps> caps_;
    std::vector<double> up_, down_;  // bytes per microsecond by class
    std::vector<Flow> flows_;
    std::vector<FlowId> free_;
    std::vector<std::uint32_t> host_slot_;
    std::vector<HostFlows> slots_;
    std::vector<std::uint32_t> free_slots_;
    std::vector<std::uint8_t> class_;
    std::uint32_t origin_;
    Time bin_;
    EventQueue& q_;
    std::uint8_t kind_;
    std::uint64_t live_ = 0;
    double origin_bytes_ = 0;
    std::vector<double> bins_;
};

}  // namespace ps::sim
