// Download level: one flow per download, the whole patch from one holder.
//
// Core pieces used: core::classify and the order of core::SourceClass (the
// source ladder) choose every download's holder among the candidates discovery
// offers, one per rung; core::SeedPolicy decides when each device stops
// serving. Not used here: core::Download (segment choice) and core::Uploads
// (request queues); in their place a holder serves at most `slots` downloads at
// once (UploadConfig::slots' meaning: peers served at once), and a download
// that finds every holder of a rung busy takes the next rung, as the core's
// ladder does on a busy answer. The origin never answers busy: past its slots,
// requests wait in line.
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <optional>

#include "sim/common.hpp"
#include "sim/levels.hpp"
#include "sim/random.hpp"

namespace ps::sim {

namespace {

enum : std::uint8_t { kFlowDone = FlowNet::kFlowDone };
enum : std::uint8_t { kNotYet, kWaiting, kDownloading, kHolding, kLeaving, kGone };

// A set of host numbers with O(1) insert, erase and uniform pick.
class PickSet {
public:
    void insert(std::uint32_t h, std::uint32_t& pos) {
        pos = static_cast<std::uint32_t>(v_.size());
        v_.push_back(h);
    }
    template <typename Pos>
    void erase(std::uint32_t& pos, Pos&& pos_of) {
        std::uint32_t last = v_.back();
        v_[pos] = last;
        pos_of(last) = pos;
        v_.pop_back();
        pos = kNone;
    }
    bool empty() const { return v_.empty(); }
    std::uint32_t pick(Rng& r) const { return v_[r.below(v_.size())]; }

private:
    std::vector<std::uint32_t> v_;
};

class DownloadLevel {
public:
    DownloadLevel(const Scenario& s, const Population& p)
        : s_(s), pop_(p), n_(static_cast<std::uint32_t>(p.devices)), patch_(static_cast<double>(patch_bytes(s))),
          matching_(stream(s.seed, Stream::Matching)) {}

    RunResult run() {
        // A device counts its uploads in 16 bits: "unlimited" slots stop at 65535.
        device_slots_ = s_.device.slots == 0 ? 65535 : std::min<std::uint32_t>(s_.device.slots, 65535);
        setup();
        Arrivals arr = make_arrivals(s_, n_);
        {
            auto online = make_online_times(s_, n_);
            for (std::uint32_t d = 0; d < n_; ++d) {
                dev_[d].arrive = arr.at[d];
                dev_[d].online = online[d];
            }
            arr.at = {};
        }
        if (s_.super_at_release)
            for (std::uint32_t k = 0; k < supers_.size(); ++k) start_super(n_ + k);
        run_events(
            q_, arr.order, [this](std::uint32_t d) { return dev_[d].arrive; }, now_, events_,
            [this](std::uint32_t d) { request(d); },
            [this](std::uint8_t kind, std::uint32_t id, std::uint32_t aux) {
                if (kind == kFlowDone) flow_done(id, aux);
            });
        return finish();
    }

private:
    // A device: everything the hot paths read about it in one cache-friendly record.
    struct Dev {
        Time arrive = 0, done = 0, start = 0;
        float online = 0;             // B, seconds
        std::uint32_t served = 0;     // copies uploaded
        std::uint32_t dom = 0;
        std::uint32_t pos_dom = kNone, pos_glob = kNone;  // in the free sets
        std::uint16_t active = 0;     // uploads in progress
        std::uint8_t state = kNotYet;
    };
    static_assert(sizeof(Dev) <= 48);

    struct Super {
        std::uint32_t domain;
        std::uint8_t state = kNotYet;
        std::uint32_t active = 0;
        std::uint32_t pos = kNone;  // in free_supers_
        std::vector<std::uint32_t> waiting;
    };

    bool is_super(std::uint32_t h) const { return h >= n_ && h < origin_; }
    Super& super(std::uint32_t h) { return supers_[h - n_]; }
    std::uint32_t domain_of(std::uint32_t h) const { return h < n_ ? dev_[h].dom : supers_[h - n_].domain; }
    Role role_of(std::uint32_t h) const { return h < n_ ? Role::Peer : h == origin_ ? Role::Origin : Role::Super; }
    core::SourceClass class_for(std::uint32_t receiver, std::uint32_t holder) const {
        const auto& me = pop_.names[domain_of(receiver)];
        if (holder == origin_) return core::classify(me, {}, Role::Origin);
        return core::classify(me, pop_.names[domain_of(holder)], role_of(holder));
    }
    bool has_room(std::uint32_t active, std::uint32_t slots) const { return slots == 0 || active < slots; }

    void setup() {
        const std::uint32_t d = static_cast<std::uint32_t>(pop_.sizes.size());
        dev_.resize(n_);
        for (std::uint32_t j = 0; j < d; ++j)
            for (std::uint64_t i = pop_.first[j]; i < pop_.first[j] + pop_.sizes[j]; ++i) dev_[i].dom = j;
        auto has = super_domains(s_, pop_);
        super_of_.assign(d, kNone);
        for (std::uint32_t j = 0; j < d; ++j)
            if (has[j]) {
                super_of_[j] = n_ + static_cast<std::uint32_t>(supers_.size());
                supers_.emplace_back();
                supers_.back().domain = j;
            }
        origin_ = n_ + static_cast<std::uint32_t>(supers_.size());
        dom_free_.resize(d);
        imports_.assign(d, 0);
        completion_.reserve(n_);
        const double mbit = 1e6 / 8;
        std::vector<FlowNet::Caps> caps{{s_.device.up_mbps * mbit, s_.device.down_mbps * mbit},
                                        {s_.super.up_mbps * mbit, s_.super.down_mbps * mbit},
                                        {s_.origin.up_mbps * mbit, s_.origin.down_mbps * mbit}};
        auto cls = [this](std::uint32_t h) { return h < n_ ? 0 : h == origin_ ? 2 : 1; };
        net_.emplace(origin_ + 1, std::move(caps), cls, origin_, to_time(s_.bin_minutes * 60), q_, kFlowDone);
    }

    // ---- the free sets: holders with a free slot ----
    void add_free(std::uint32_t h) {
        if (h < n_) {
            dom_free_[dev_[h].dom].insert(h, dev_[h].pos_dom);
            glob_free_.insert(h, dev_[h].pos_glob);
        } else if (is_super(h)) {
            free_supers_.insert(h, super(h).pos);
        }
    }
    void remove_free(std::uint32_t h) {
        if (h < n_) {
            if (dev_[h].pos_dom != kNone) dom_free_[dev_[h].dom].erase(dev_[h].pos_dom, [this](std::uint32_t x) -> std::uint32_t& { return dev_[x].pos_dom; });
            if (dev_[h].pos_glob != kNone) glob_free_.erase(dev_[h].pos_glob, [this](std::uint32_t x) -> std::uint32_t& { return dev_[x].pos_glob; });
        } else if (is_super(h) && super(h).pos != kNone) {
            free_supers_.erase(super(h).pos, [this](std::uint32_t x) -> std::uint32_t& { return super(x).pos; });
        }
    }

    // A device's time limit (SeedPolicy::max_seconds) is checked when it is
    // picked, not by an event of its own: one that has passed it leaves then,
    // and the pick is drawn again (uniform over the devices still seeding).
    // This keeps millions of deadlines out of the event queue.
    std::uint32_t pick_live(const PickSet& set) {
        while (!set.empty()) {
            std::uint32_t h = set.pick(matching_);
            if (keeps_seeding(h)) return h;
            leave(h);
        }
        return kNone;
    }

    // ---- the ladder ----
    // Discovery offers at most one usable holder per kind; the core's ladder
    // (classify, then the nearest rung) picks among them.
    std::uint32_t choose(std::uint32_t receiver) {
        std::uint32_t cand[5];
        int nc = 0;
        const std::uint32_t j = domain_of(receiver);
        const bool device = receiver < n_;
        if (devices_serve(s_.model)) {
            std::uint32_t h = kNone;
            if (s_.model == Model::P2pRandom) {
                if (device) h = pick_live(glob_free_);
            } else {
                h = pick_live(dom_free_[j]);
            }
            if (h != kNone) cand[nc++] = h;
        }
        if (device && super_of_[j] != kNone) {
            Super& sp = super(super_of_[j]);
            // A cache that does not hold the patch yet fetches it (pull-through);
            // one that holds it but has no free slot answers busy.
            if (sp.state != kHolding || has_room(sp.active, s_.super.slots)) cand[nc++] = super_of_[j];
        }
        // Other domains: their peers (devices of the P2P models only, with
        // remote_peers), their super-nodes (with remote_supers).
        if (device && s_.remote_peers && devices_serve(s_.model) && s_.model != Model::P2pRandom)
            if (std::uint32_t h = pick_live(glob_free_); h != kNone) cand[nc++] = h;
        if (s_.remote_supers && !free_supers_.empty()) {
            std::uint32_t h = free_supers_.pick(matching_);
            if (h != receiver) cand[nc++] = h;
        }
        cand[nc++] = origin_;
        std::uint32_t best = cand[0];
        auto best_cls = class_for(receiver, best);
        for (int i = 1; i < nc; ++i) {
            auto c = class_for(receiver, cand[i]);
            if (c < best_cls) {
                best = cand[i];
                best_cls = c;
            }
        }
        return best;
    }

    void request(std::uint32_t d) {
        dev_[d].state = kWaiting;
        fetch(d);
    }

    // Receiver d (a device or a super-node) takes the patch from the holder the ladder picks.
    void fetch(std::uint32_t r) {
        std::uint32_t h = choose(r);
        if (is_super(h) && super(h).state != kHolding) {
            super(h).waiting.push_back(r);
            start_super(h);
            return;
        }
        if (h == origin_ && !has_room(origin_active_, s_.origin.slots)) {
            origin_line_.push_back(r);
            return;
        }
        start(h, r);
    }

    void start_super(std::uint32_t h) {
        Super& sp = super(h);
        if (sp.state != kNotYet) return;
        sp.state = kWaiting;
        ++supers_used_;
        fetch(h);
    }

    void start(std::uint32_t h, std::uint32_t r) {
        if (r < n_) {
            dev_[r].state = kDownloading;
            dev_[r].start = now_;
        }
        if (h < n_) {
            if (++dev_[h].active == device_slots_) remove_free(h);
        } else if (is_super(h)) {
            if (++super(h).active == s_.super.slots) remove_free(h);
        } else {
            ++origin_active_;
        }
        net_->start(h, r, patch_, now_, 0);
    }

    void flow_done(std::uint32_t f, std::uint32_t version) {
        if (!net_->done_event(f, version, now_)) return;
        std::uint32_t h = net_->src(f), r = net_->dst(f);
        net_->finish(f, now_);
        auto cls = class_for(r, h);
        bytes_by_class_[static_cast<int>(cls)] += patch_bytes(s_);
        if (cls >= core::SourceClass::OtherDomain) imports_[domain_of(r)] += 1;
        if (r < n_) device_complete(r);
        else super_complete(r);
        holder_released(h);
    }

    void device_complete(std::uint32_t d) {
        dev_[d].done = now_;
        ++completed_;
        completion_.push_back(static_cast<float>(static_cast<double>(now_ - dev_[d].arrive) / 1e6));
        auto pol = policy(d);
        if (!pol.keep_seeding(0, patch_bytes(s_), 0)) {
            dev_[d].state = kGone;
            return;
        }
        dev_[d].state = kHolding;
        add_free(d);
    }

    void super_complete(std::uint32_t h) {
        Super& sp = super(h);
        sp.state = kHolding;
        add_free(h);
        auto waiting = std::move(sp.waiting);
        sp.waiting.clear();
        for (auto r : waiting) fetch(r);  // the ladder again: the cache may be full by now
    }

    core::SeedPolicy policy(std::uint32_t d) const {
        return seed_policy(s_, dev_[d].online, static_cast<double>(dev_[d].done - dev_[d].start) / 1e6,
                           static_cast<double>(dev_[d].done - dev_[d].arrive) / 1e6);
    }
    bool keeps_seeding(std::uint32_t d) const {
        return policy(d).keep_seeding(std::uint64_t{dev_[d].served} * patch_bytes(s_), patch_bytes(s_),
                                      static_cast<double>(now_ - dev_[d].done) / 1e6);
    }

    void holder_released(std::uint32_t h) {
        if (h == origin_) {
            --origin_active_;
            if (!origin_line_.empty()) {
                std::uint32_t r = origin_line_.front();
                origin_line_.pop_front();
                start(origin_, r);
            }
            return;
        }
        if (is_super(h)) {
            if (super(h).active-- == s_.super.slots) add_free(h);
            return;
        }
        ++dev_[h].served;
        bool was_full = dev_[h].active-- == device_slots_;
        if (dev_[h].state == kLeaving) {
            if (dev_[h].active == 0) dev_[h].state = kGone;
            return;
        }
        if (!keeps_seeding(h)) return leave(h);
        if (was_full) add_free(h);
    }

    // Stops taking new downloads; the ones in progress finish.
    void leave(std::uint32_t d) {
        remove_free(d);
        dev_[d].state = dev_[d].active ? kLeaving : kGone;
    }

    RunResult finish() {
        RunResult r;
        r.model = s_.model;
        r.level = Level::Download;
        r.devices = n_;
        r.supers = supers_used_;
        r.patch_bytes = patch_bytes(s_);
        r.completed = completed_;
        r.source_bytes = static_cast<std::uint64_t>(std::llround(net_->origin_bytes()));
        r.source_bytes_client_server_equivalent = std::uint64_t{n_} * r.patch_bytes;
        r.bytes_by_class = bytes_by_class_;
        for (auto b : bytes_by_class_) r.delivered_bytes += b;
        r.bin_seconds = static_cast<double>(to_time(s_.bin_minutes * 60)) / 1e6;
        fill_source_load(r, net_->origin_bins());
        r.domain_size = pop_.sizes;
        r.domain_imports = imports_;
        r.events = events_;
        r.end_seconds = static_cast<double>(now_) / 1e6;
        fill_completion_stats(r, completion_);
        return r;
    }

    const Scenario& s_;
    const Population& pop_;
    const std::uint32_t n_;
    const double patch_;
    Rng matching_;
    EventQueue q_;
    std::optional<FlowNet> net_;
    Time now_ = 0;
    std::uint64_t events_ = 0;

    std::vector<Dev> dev_;  // devices, by number
    std::uint32_t device_slots_ = 0;

    std::vector<Super> supers_;
    std::vector<std::uint32_t> super_of_;  // by domain
    std::uint32_t origin_ = 0;
    std::uint32_t origin_active_ = 0;
    std::deque<std::uint32_t> origin_line_;
    std::uint64_t supers_used_ = 0;

    std::vector<PickSet> dom_free_;
    PickSet glob_free_, free_supers_;

    std::vector<double> imports_;
    std::array<std::uint64_t, core::kSourceClasses> bytes_by_class_{};
    std::uint64_t completed_ = 0;
    std::vector<float> completion_;
};

}  // namespace

RunResult run_download_level(const Scenario& s, const Population& p) { return DownloadLevel(s, p).run(); }

}  // namespace ps::sim
