// The sans-IO download core: which segment next, and from whom.
//
// Contract (same shape for the libuv node and the simulator):
//  - The driver feeds events (peer joined/left, what a peer holds, a segment
//    finished and whether it verified, a reject, the passing of time) and gets
//    back Actions (Request / Cancel) appended to a caller-owned vector.
//  - No sockets, threads, clocks or global randomness: time is passed in as
//    Millis from the driver's monotonic clock, randomness comes from the seed.
//  - Segment bytes never enter the core; it deals in indices only.
//
// Policy:
//  - Rarest first among the segments nobody is fetching yet, ties broken by a
//    per-download random permutation (so that downloaders spread out).
//  - For a chosen segment, a holder on the nearest rung of the source ladder
//    (same-domain peer, same-domain super-node, other domains, origin) that holds
//    it and is not backed off; the least loaded one with a free request slot. If
//    that rung's holders are merely busy with our own pipelined requests, the
//    segment waits: the ladder is climbed down only when the nearer rungs cannot
//    serve (nobody there holds it, or they answered busy, stalled or lied).
//  - Endgame: once every missing segment is in flight, a segment whose request
//    is older than endgame_after may be asked of a second holder on the same or
//    a nearer rung; the first copy to arrive cancels the other.
//  - A segment that fails its hash bans its sender for this patch. A request
//    that times out backs its holder off, so a stalled holder costs one timeout.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/bitfield.hpp"
#include "core/rng.hpp"
#include "core/types.hpp"

namespace ps::core {

using PeerId = std::uint64_t;  // opaque handle chosen by the driver
using Millis = std::uint64_t;  // the driver's monotonic time in milliseconds

// The source ladder, nearest rung first.
enum class SourceClass : std::uint8_t { SameDomainPeer = 0, SameDomainSuper = 1, OtherDomain = 2, Origin = 3 };
inline constexpr int kSourceClasses = 4;

inline SourceClass classify(std::string_view my_domain, std::string_view their_domain, Role their_role) {
    if (their_role == Role::Origin) return SourceClass::Origin;
    if (their_domain != my_domain) return SourceClass::OtherDomain;
    return their_role == Role::Super ? SourceClass::SameDomainSuper : SourceClass::SameDomainPeer;
}

inline std::string_view to_string(SourceClass c) {
    switch (c) {
        case SourceClass::SameDomainPeer: return "same-domain-peer";
        case SourceClass::SameDomainSuper: return "same-domain-super";
        case SourceClass::OtherDomain: return "other-domain";
        case SourceClass::Origin: return "origin";
    }
    return "?";
}

// Why a holder refused a request. The numeric values go on the wire.
// Later: the holder has the segment but is handing it to another peer of its
// domain right now; ask it for something else, and for this segment the peers
// it reaches first (they will announce it), or it again after a while.
enum class RejectReason : std::uint8_t { Busy = 1, NotHeld = 2, Banned = 3, UnknownPatch = 4, Later = 5 };

struct DownloadConfig {
    // Requests in flight per holder: enough to keep a loopback or LAN pipe full
    // with 1 MiB segments, small enough that one slow holder hoards little.
    std::uint32_t max_requests_per_peer = 4;
    // Requests in flight across all holders: each may hold a segment's worth of
    // receive buffer, so this bounds a downloader's memory (16 x 1 MiB).
    std::uint32_t max_requests_total = 16;
    // Requests in flight per holder are sized from what the holder delivers to
    // us: about this long of its measured rate, at least one, at most
    // max_requests_per_peer. Deep pipelines to a slow or shared uplink only
    // queue work the holder cannot cancel, and commit segments that another
    // holder could have sent sooner. 0 = always max_requests_per_peer.
    Millis pipeline_target = 1'500;
    // Copies of one segment requested at once in endgame.
    std::uint32_t max_requests_per_segment_endgame = 2;
    // Endgame asks a second holder only for a request whose holder has sent
    // nothing for this long (a slow but steady holder is not doubled), so that
    // a small patch does not double its load on the holders from the start.
    Millis endgame_after = 5'000;
    Millis request_timeout = 10'000;
    // A holder's bytes keep its requests alive only while it delivers at least
    // this many bytes per second (measured): a holder trickling a byte now and
    // then costs one request_timeout, not a stalled download.
    std::uint64_t min_useful_rate = 4 * 1024;
    // How long a holder that answered busy, or timed out, is left alone.
    Millis busy_backoff = 500;
    Millis stall_backoff = 30'000;
    // A new download leaves each rung alone this long after it meets its first
    // holder, so that nearer holders found in the same lookup can finish their
    // handshake before farther ones, the origin above all, are asked for anything.
    std::array<Millis, kSourceClasses> rung_delay{0, 0, 250, 750};
    // The longest a rung waits for nearer holders that are still connecting.
    Millis connect_wait = 3'000;
    // Devices: ask other domains (and the origin) only while nothing is on its
    // way from the own domain. While the domain's super-node or peers are
    // serving us, what they lack now they will soon hold (they download too), so
    // waiting costs little time and saves the links between domains. A device
    // with nothing coming from its domain climbs, unless its domain's
    // super-node is still downloading and got a new segment within
    // local_super_wait (it will soon hold what we lack). Super-nodes and the
    // origin leave it off: fetching from afar is their job.
    bool local_first = false;
    Millis local_super_wait = 2'000;
    // With local_first, other domains and the origin are not asked before this
    // long after the first holder was met: a device that has just started may
    // meet other domains' super-nodes before it has even found its own.
    Millis local_far_delay = 1'500;
    // After a Later answer, the holder is not asked for that segment again for
    // this long: by then a peer it served has it, or it is free again.
    Millis later_wait = 2'000;
};

struct Action {
    enum Kind : std::uint8_t { Request, Cancel };
    Kind kind;
    PeerId peer;
    std::uint32_t segment;
    bool operator==(const Action&) const = default;
};

class Download {
public:
    Download(std::uint32_t segment_count, DownloadConfig cfg, std::uint64_t seed);

    // ---- events ----
    void mark_held(std::uint32_t seg);  // resumed from disk
    // `now` starts the rung delays when this is the first holder met.
    void add_peer(PeerId peer, SourceClass cls, Millis now = 0);
    void remove_peer(PeerId peer);  // its requests become free to go elsewhere
    // How many holders of each rung the driver is still connecting to. While a
    // nearer one is on its way, farther rungs wait (at most connect_wait).
    void set_connecting(const std::array<std::uint32_t, kSourceClasses>& n) { connecting_ = n; }
    // Most requests in flight (a download rate limit lowers it: requests
    // already granted would otherwise arrive at full speed). At least 1.
    void set_max_requests_total(std::uint32_t n) { cfg_.max_requests_total = n ? n : 1; }
    // The patch's segment size, which turns a holder's rate into a pipeline depth.
    void set_segment_bytes(std::uint32_t n);
    // Import shares (a domain's coordinated import): the segments this node
    // may fetch from other domains and the origin on its domain's behalf. Once
    // a share is set, every other segment comes from the own domain only (its
    // super-node hands a stalled one to someone else), whatever local_first
    // says; until then local_first alone decides. An empty share is a share.
    void set_import_share(const Bitfield& share) {
        if (share.size() == held_.size()) share_ = share;
    }
    void clear_import_share() { share_.reset(); }
    bool coordinated() const { return share_.has_value(); }
    // Segments of the import share not held yet (0 without a share).
    std::uint32_t share_left() const;
    // Whether a holder in the own domain (peer or super-node) holds `seg`.
    bool held_nearby(std::uint32_t seg) const;
    void peer_bitfield(PeerId peer, const Bitfield& have);
    void peer_has(PeerId peer, std::uint32_t seg);
    // A whole segment arrived from `peer` and was checked against the manifest.
    // Valid: marks it held and cancels duplicate endgame requests. Invalid: bans
    // the sender for this patch and cancels everything asked of it.
    void segment_done(PeerId peer, std::uint32_t seg, bool valid, std::vector<Action>& out);
    void rejected(PeerId peer, std::uint32_t seg, RejectReason why, Millis now);
    // The driver takes back a request (a nearer holder has the segment now):
    // emits its Cancel; the segment is free to be asked of someone else.
    void withdraw(PeerId peer, std::uint32_t seg, std::vector<Action>& out);
    // Bytes of a requested segment arrived from `peer`: its requests are alive.
    // Timeouts count from the later of the request and the peer's last progress,
    // so a busy holder draining a deep pipeline over a slow uplink is not taken
    // for a stalled one.
    void progress(PeerId peer, Millis now, std::uint64_t bytes = 0);
    // Expires stalled requests (emitting Cancel), then fills free request slots.
    void tick(Millis now, std::vector<Action>& out);
    // Only expires stalled requests (for a driver that holds back new requests,
    // e.g. under a download rate limit).
    void expire(Millis now, std::vector<Action>& out);
    // Fills free request slots; call after any event that may have freed one.
    void pump(Millis now, std::vector<Action>& out);
    // The earliest time after `now` at which tick() may act differently: a
    // request timing out, a back-off or a rung delay ending, endgame starting.
    std::optional<Millis> next_deadline(Millis now) const;

    // ---- queries ----
    bool complete() const { return held_.all(); }
    const Bitfield& held() const { return held_; }
    std::uint32_t segment_count() const { return held_.size(); }
    bool is_banned(PeerId peer) const;
    bool has_peer(PeerId peer) const { return find(peer) != nullptr; }
    bool is_requested(PeerId peer, std::uint32_t seg) const;
    // Whether `peer` told us it holds `seg`.
    bool peer_holds(PeerId peer, std::uint32_t seg) const;
    bool in_flight(std::uint32_t seg) const { return seg < in_flight_.size() && !in_flight_[seg].empty(); }
    // The holders `seg` is asked of now, by id (into `out`, cleared first).
    void requesters(std::uint32_t seg, std::vector<PeerId>& out) const;
    std::uint32_t in_flight() const { return in_flight_total_; }
    // What `peer` has been delivering to us, bytes per second (0: not measured).
    double rate_of(PeerId peer) const;
    std::uint32_t availability(std::uint32_t seg) const { return availability_[seg]; }

private:
    struct Peer {
        PeerId id = 0;
        SourceClass cls{};
        Bitfield have;
        bool banned = false;
        Millis backoff_until = 0;
        Millis last_progress = 0;
        std::uint32_t in_flight = 0;
        // local_first: how many segments the peer held when last looked at, and
        // when that count last grew (is a still-downloading super-node progressing?).
        std::uint32_t seen_count = 0;
        Millis last_gain = 0;
        // Delivery rate from this holder (bytes per ms, smoothed), and the
        // bytes counted since the last sample.
        double rate = 0;
        std::uint64_t sample_bytes = 0;
        Millis sample_start = 0;
        std::uint32_t pipe = 1;  // pipeline(): follows the rate
        bool usable_now = false;  // pump()'s view, fixed for one call
        // Segments it answered Later for, and until when they are not asked of it.
        std::vector<std::pair<std::uint32_t, Millis>> later;
    };
    struct InFlight {
        PeerId peer;
        Millis since;
        std::uint32_t slot;  // the peer's index in peers_ (kept up to date)
    };

    Peer* find(PeerId peer);
    const Peer* find(PeerId peer) const;
    bool rung_usable(int rung, Millis now) const;
    bool can_ask(const Peer& p) const;
    std::uint32_t pipeline(const Peer& p) const;
    void shift_slots(std::uint32_t from, int by);
    void rank_order(std::vector<std::uint32_t>& segs);
    bool open_slots(Millis now);
    bool slots_left() const { return open_ > 0 && in_flight_total_ < cfg_.max_requests_total; }
    Peer* pick_holder(std::uint32_t seg, bool endgame);
    int asked_rung(std::uint32_t seg) const;
    void request(Peer& p, std::uint32_t seg, Millis now, std::vector<Action>& out);
    void drop_request(PeerId peer, std::uint32_t seg);
    void forget_have(Peer& p);
    Millis quiet_since(const InFlight& f) const;
    bool lacks_from(const Peer& p) const;
    bool useful(const Peer& p) const;
    std::optional<Millis> compute_deadline(Millis now) const;
    void changed() { deadline_known_ = false; }
    void revived(const Peer& p, Millis now, bool steady);
    void sample(Peer& p, Millis now, std::uint64_t bytes);
    void restore_later(Millis now);

    DownloadConfig cfg_;
    Bitfield held_;
    std::vector<std::uint32_t> rank_;          // random tie-break rank per segment
    std::vector<std::uint32_t> by_rank_;       // the segment of each rank
    std::vector<std::uint16_t> availability_;  // unbanned holders per segment
    std::vector<std::vector<InFlight>> in_flight_;
    std::vector<std::uint64_t> asked_;  // segments with a request in flight (Bitfield words)
    std::uint32_t in_flight_total_ = 0;
    // Sorted by id: decisions never depend on hash or insertion order (a
    // download meets a few dozen holders, so a flat vector beats a map).
    std::vector<Peer> peers_;
    std::uint32_t open_ = 0;  // pump(): usable holders with a free pipeline slot
    std::vector<std::uint64_t> askable_;  // pump(): segments such a holder has (Bitfield words)
    std::vector<std::uint32_t> scratch_;
    std::optional<Bitfield> share_;  // set: the coordinated import's share
    std::vector<std::uint64_t> keys_;  // rank_order()
    std::optional<Millis> started_;  // when the first holder was met
    std::array<std::uint32_t, kSourceClasses> connecting_{};
    std::uint32_t segment_bytes_ = 1u << 20;
    // next_deadline()'s last answer, and the time it was computed for: it
    // stands until something it depends on changes (changed()) or it passes.
    mutable bool deadline_known_ = false;
    mutable Millis deadline_at_ = 0;
    mutable std::optional<Millis> deadline_;
    static constexpr std::uint32_t kNoSlot = ~std::uint32_t{0};
    mutable std::uint32_t deadline_slot_ = kNoSlot;  // the holder whose request set it, if one did
};

}  // namespace ps::core
