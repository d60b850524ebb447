// The sans-IO engine: a node's whole transfer protocol in one object.
//
// It owns the protocol state of one node: its peers (known by node key, across
// reconnects), its patches, their downloads (core::Download) and what it
// serves (core::Uploads, core::SuperSeeding), per-patch bans by node key, and
// when to look up holders or announce itself. Drivers — the libuv node
// (node/node.cpp) and the simulator's segment level (sim/segment_level.cpp) —
// feed it events and carry out the actions it appends to actions():
//
//   events in:   a connection up or down (with the peer's proven key, role and
//                domain), a decoded message, a segment stored or read, holders
//                found, the passing of time (tick);
//   actions out: send a message, dial, close, serve (read and send) a segment,
//                store (verify and write) a segment, look up or announce in
//                the DHT, a patch completed;
//   next_deadline(): the earliest time at which tick() has something to do,
//                so that no driver polls on a fixed tick.
//
// No sockets, clocks, threads, files or global randomness: time comes in as
// an Instant from the driver, randomness from the seed, and segment bytes
// never enter it (the driver keeps them; the engine keeps their counts).
#pragma once

#include <algorithm>
#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/bitfield.hpp"
#include "core/bytes.hpp"
#include "core/download.hpp"
#include "core/import_shares.hpp"
#include "core/policy.hpp"
#include "core/types.hpp"

namespace ps::core {

// Distinct types for what the engine's API carries.
enum class ConnId : std::uint64_t {};      // a connection, named by the driver
enum class Segment : std::uint32_t {};     // a segment index within a patch
struct Instant {                           // the driver's monotonic time
    Millis ms = 0;
    auto operator<=>(const Instant&) const = default;
};
inline std::uint32_t idx(Segment s) { return static_cast<std::uint32_t>(s); }
inline std::uint64_t raw(ConnId c) { return static_cast<std::uint64_t>(c); }

using NodeKey = std::array<std::uint8_t, 32>;
using PatchId = Hash32;

// A node as a holder record or a contact names it, before anyone dialed it.
struct Holder {
    NodeKey key{};
    Role role = Role::Peer;
    std::string domain;
    std::string host;
    std::uint16_t port = 0;
};

// What the handshake proved about the other end.
struct PeerIdentity {
    NodeKey key{};
    Role role = Role::Peer;
    std::string domain;
};

struct PatchShape {
    std::uint32_t segments = 0;
    std::uint32_t segment_size = 0;
    std::uint64_t total_size = 0;
    std::uint32_t length(std::uint32_t seg) const {
        if (seg + 1 < segments) return segment_size;
        return static_cast<std::uint32_t>(total_size - std::uint64_t{segment_size} * (segments - 1));
    }
};

struct EngineConfig {
    NodeKey self{};
    Role role = Role::Peer;
    std::string domain;
    DownloadConfig download;  // local_first is set from the role
    UploadConfig uploads;
    std::uint64_t upload_rate = 0;    // bytes/s, 0 = unlimited
    std::uint64_t download_rate = 0;  // bytes/s, 0 = unlimited
    // Segment bytes being read or queued for sending, across every connection;
    // beyond it no new segment is served (bounds memory whatever the peer count).
    std::uint64_t upload_buffer = 8u << 20;
    // Bytes queued on one connection above which it gets no new segment.
    std::uint64_t conn_high_water = 4u << 20;
    std::size_t max_peers = 32;          // connections and dials at once
    // Holder lookups while downloading: every lookup_interval while no holder
    // is connected; once holders are, the interval doubles up to
    // lookup_interval_max, with +-25% jitter so that a crowd does not look up
    // in step.
    Millis lookup_interval = 1'000;
    Millis lookup_interval_max = 60'000;
    // A device given an import share looks up other domains' holders at once,
    // and again at most this often while the share lasts: its own domain's
    // lookups back off, but afar it knows only the super-nodes and the origin.
    Millis far_lookup_gap = 10'000;
    Millis announce_min_interval = 2'000;  // holder record updates, at most this often
    Millis announce_refresh = 20 * 60 * 1000;
    // The origin, and a super-node toward its own domain's devices, hand a
    // segment out again only after this (super-seeding). Long enough that the
    // first copy is through a capped uplink and passed on before a second one
    // is sent: on an 8 Mbit/s uplink a 1 MiB segment alone takes a second.
    Millis superseed_reserve = 10'000;
    // The origin's reserve: longer, as a segment it sent into one domain
    // reaches the others through that domain (its member, then its
    // super-node), and a second copy from the origin is a second import.
    Millis origin_reserve = 30'000;
    bool super_superseed = true;  // super-nodes super-seed toward their devices
    // Devices pace a segment toward their own domain: while the uplink is
    // busy, a segment queued for or handed to a peer of the domain less than
    // peer_pace ago is answered Later to the next one asking. The first copy
    // goes through sooner and its receiver passes it on, a tree instead of
    // one holder feeding every peer at once at a fraction of its rate each.
    // The pace is 1.5 times the time a segment takes through the uplink at the
    // rate measured over the last second (on a fast link, a few ms), at most
    // peer_pace (also while nothing is measured yet). 0 = off.
    Millis peer_pace = 1'500;
    // Super-nodes coordinate their domain's import (core/import_shares.hpp):
    // each segment the domain lacks is fetched afar by one member. A member
    // that has not brought its segment in after import_stall loses it to the
    // super-node; shares are re-decided every coordinate_interval.
    bool coordinate_imports = true;
    Millis import_stall = 30'000;
    Millis coordinate_interval = 1'000;
    // The own uplink's capacity and a device's, bytes/s (0: unknown). A
    // super-node whose uplink outruns all of its devices' together (a cache on
    // a fast link) does not share its domain's import: it fetches everything
    // afar itself and its devices decide alone.
    std::uint64_t uplink_capacity = 0;
    std::uint64_t device_uplink = 0;
    bool fault_ignore_requests = false;  // tests only: take requests, never answer
};

// Per patch, what moved and where it came from.
struct PatchStats {
    std::array<std::uint64_t, kSourceClasses> bytes_from{};  // by SourceClass
    // Data that arrived for no request any more (sent before our Cancel
    // reached the holder, or after a request was given up): by SourceClass.
    std::array<std::uint64_t, kSourceClasses> wasted_from{};
    std::array<std::uint64_t, kSourceClasses> busy_from{};   // "busy" answers, by SourceClass
    std::uint64_t bytes_downloaded = 0;  // verified segment bytes stored
    std::uint64_t bytes_uploaded = 0;    // segment bytes served
    std::uint64_t segments_verified = 0;
    std::uint64_t segments_rejected = 0;  // failed their hash
    Millis started_ms = 0;
    std::optional<Millis> completed_ms;
    std::set<NodeKey> banned;  // node keys banned for this patch
};

// How a Data message fared.
enum class DataVerdict : std::uint8_t {
    Drop,       // not asked for (late chunk of a cancelled request): ignore it
    Take,       // append it to the segment's buffer
    TakeLast,   // append it: the segment is whole, a Store action follows
    Violation,  // out of order or past the end: the connection is closed
};

// What became of a Store action.
enum class StoreOutcome : std::uint8_t { Stored, BadHash, IoError };

// Why the engine closes a connection (a code for drivers that branch on it).
enum class CloseWhy : std::uint8_t { Duplicate, ProtocolViolation };

namespace act {
struct SendHave { ConnId conn; PatchId patch; Bytes bitfield; };
struct SendHaveOne { ConnId conn; PatchId patch; Segment seg; };
struct SendRequest { ConnId conn; PatchId patch; Segment seg; SourceClass from; };
struct SendCancel { ConnId conn; PatchId patch; Segment seg; };  // also: forget its partial bytes
struct SendReject { ConnId conn; PatchId patch; Segment seg; RejectReason reason; };
// A super-node to a device of its domain: the segments it fetches afar.
struct SendAssign { ConnId conn; PatchId patch; Bytes share; };
// Read the segment (checking it against the manifest) and send it as Data;
// then report served() or serve_failed().
struct Serve { ConnId conn; PatchId patch; Segment seg; std::uint32_t bytes; };
// The segment's bytes from `conn` are whole: verify and write them; then
// report stored().
struct Store { ConnId conn; PatchId patch; Segment seg; };
struct Dial { Holder to; };
struct Close { ConnId conn; CloseWhy why; std::string reason; };
// Look up the patch's holders in the DHT: the own domain's and the global
// key's; `far`: also other domains' (a device with an import share to fetch).
struct Lookup { PatchId patch; bool far = false; };
struct Announce { PatchId patch; std::uint32_t held; std::uint32_t segments; };  // put the holder record
struct Banned { PatchId patch; NodeKey key; Segment seg; };  // for the log
struct Completed { PatchId patch; };  // every segment stored
}  // namespace act

using EngineAction = std::variant<act::SendHave, act::SendHaveOne, act::SendRequest, act::SendCancel, act::SendReject,
                                  act::SendAssign, act::Serve, act::Store, act::Dial, act::Close, act::Lookup, act::Announce,
                                  act::Banned, act::Completed>;

// Orders 32-byte keys (node keys, patch ids) exactly as std::array's
// operator< does, byte by byte, but as four 64-bit compares inlined where the
// engine's maps look keys up (on nearly every event) instead of a memcmp call.
struct KeyLess {
    static std::uint64_t word(const std::uint8_t* p) {
        std::uint64_t w = 0;
        for (int i = 0; i < 8; ++i) w = w << 8 | p[i];  // big-endian: the first byte counts most
        return w;
    }
    static bool equal(const Hash32& a, const Hash32& b) {
        for (std::size_t i = 0; i < 32; i += 8)
            if (word(a.data() + i) != word(b.data() + i)) return false;
        return true;
    }
    bool operator()(const Hash32& a, const Hash32& b) const {
        for (std::size_t i = 0; i < 32; i += 8) {
            std::uint64_t x = word(a.data() + i), y = word(b.data() + i);
            if (x != y) return x < y;
        }
        return false;
    }
    // (patch, segment) pairs, ordered as std::pair's operator< orders them.
    bool operator()(const std::pair<Hash32, std::uint32_t>& a, const std::pair<Hash32, std::uint32_t>& b) const {
        if ((*this)(a.first, b.first)) return true;
        if ((*this)(b.first, a.first)) return false;
        return a.second < b.second;
    }
};

// A connection's handful of patch ids (told, heard, full), used as a set: the
// first one inline (a node mostly serves one patch, and connections come and
// go by the thousand), any further ones in a flat vector.
class PatchSet {
public:
    bool count(const PatchId& p) const {
        if (!has_first_) return false;
        if (KeyLess::equal(first_, p)) return true;
        return std::any_of(rest_.begin(), rest_.end(), [&](const PatchId& q) { return KeyLess::equal(q, p); });
    }
    bool insert(const PatchId& p) {  // false: it was in already
        if (count(p)) return false;
        if (!has_first_) {
            first_ = p;
            has_first_ = true;
        } else {
            rest_.push_back(p);
        }
        return true;
    }
    void erase(const PatchId& p) {
        if (!has_first_) return;
        if (!KeyLess::equal(first_, p)) return (void)std::erase(rest_, p);
        has_first_ = !rest_.empty();
        if (has_first_) {
            first_ = rest_.back();
            rest_.pop_back();
        }
    }

private:
    bool has_first_ = false;
    PatchId first_{};
    std::vector<PatchId> rest_;
};

class Engine {
public:
    Engine(EngineConfig cfg, std::uint64_t seed);

    // ---- patches ----
    // Takes part in a patch: serves what `held` says, and downloads the rest
    // when `download`. The origin super-seeds what it serves.
    void add_patch(const PatchId& id, PatchShape shape, const Bitfield& held, bool download, Instant now);
    // Stops taking part: cancels its requests, drops its queued uploads.
    void remove_patch(const PatchId& id);
    bool pause(const PatchId& id);   // false: not downloading
    void resume(const PatchId& id, Instant now);
    void set_rates(Instant now, std::uint64_t upload, std::uint64_t download);
    void set_upload_slots(std::uint32_t slots);
    // A device policy (battery, metered link, monthly cap) refuses uploads:
    // every request is answered busy, so the requester turns to another
    // holder, and what was queued is answered busy at once.
    void set_uploads_refused(bool refused);
    bool uploads_refused() const { return uploads_.paused(); }
    // Requests answered busy because of it, since start.
    std::uint64_t refused_by_policy() const { return refused_by_policy_; }

    // ---- connections ----
    // The handshake with `peer` completed. A second connection to the same
    // node is closed (the one dialed by the smaller key is kept, so that both
    // ends choose alike); returns false when this one lost.
    bool conn_up(ConnId c, const PeerIdentity& peer, bool we_dialed, Instant now);
    void conn_down(ConnId c, Instant now);
    // A dial the engine (or note_dial) started never came up.
    void dial_failed(const NodeKey& key, Instant now);
    // The driver dials on its own (gossip): counts against max_peers and, for
    // nearer holders, holds farther rungs back while it connects.
    bool may_dial(const NodeKey& key) const;
    void note_dial(const Holder& h);
    // Bytes now queued for sending on `c` (after a write drained, or data was queued).
    void writable(ConnId c, std::uint64_t queued, Instant now);

    // ---- messages from a peer ----
    void on_have(ConnId c, const PatchId& p, ByteView bitfield, Instant now);
    void on_have_one(ConnId c, const PatchId& p, Segment s, Instant now);
    void on_request(ConnId c, const PatchId& p, Segment s, Instant now);
    void on_cancel(ConnId c, const PatchId& p, Segment s);
    void on_reject(ConnId c, const PatchId& p, Segment s, std::uint8_t reason, Instant now);
    // The own domain's super-node names the segments this device fetches afar.
    void on_assign(ConnId c, const PatchId& p, ByteView share, Instant now);
    DataVerdict on_data(ConnId c, const PatchId& p, Segment s, std::uint32_t offset, std::uint32_t len, Instant now);

    // ---- results of actions ----
    void stored(ConnId from, const PatchId& p, Segment s, StoreOutcome outcome, Instant now);
    // A Serve was carried out: its bytes are queued on the connection, which
    // now has `queued` bytes waiting.
    void served(ConnId c, const PatchId& p, Segment s, std::uint64_t queued, Instant now);
    // A Serve could not be read, or no longer matched the manifest: the segment
    // is no longer held, and the requester is told.
    void serve_failed(ConnId c, const PatchId& p, Segment s, Instant now);
    // Holders of a patch found under the own domain's key (own_domain) or the
    // cross-domain key. Dials the new ones, up to max_peers.
    void holders_found(const PatchId& p, std::span<const Holder> holders, bool own_domain, Instant now);
    // Super-nodes of the own domain the driver knows of (membership records,
    // Peers messages): a downloading device dials them even when its holder
    // lookups missed them.
    void domain_supers(std::span<const Holder> supers, Instant now);

    // ---- time ----
    void tick(Instant now);
    std::optional<Instant> next_deadline(Instant now);

    // ---- output ----
    std::vector<EngineAction>& actions() { return out_; }

    // ---- queries ----
    bool has_patch(const PatchId& p) const { return patches_.count(p) != 0; }
    const PatchStats* stats(const PatchId& p) const;
    const Bitfield* held(const PatchId& p) const;
    bool downloading(const PatchId& p) const;
    bool paused(const PatchId& p) const;
    Millis last_served(const PatchId& p) const;
    bool connected(const NodeKey& key) const { return by_key_.count(key) != 0; }
    bool has_conn(ConnId c) const { return conns_.count(c) != 0; }
    bool dialing(const NodeKey& key) const { return dialing_.count(key) != 0; }
    std::size_t peer_count() const { return by_key_.size(); }
    std::size_t dial_count() const { return dialing_.size(); }
    std::size_t upload_peers() const { return uploads_.active_peers(); }
    std::uint64_t lookups(const PatchId& p) const;
    // A patch's holder lookups as scheduled, for the driver to show: holders
    // connected now, lookups so far, when the next one is due (0 = none).
    struct LookupView {
        std::size_t holders = 0;
        std::uint64_t lookups = 0;
        Millis next_lookup = 0;
    };
    LookupView lookup_view(const PatchId& p) const;
    const EngineConfig& config() const { return cfg_; }
    std::optional<PeerIdentity> peer(ConnId c) const;

private:
    struct Conn {
        PeerIdentity who;
        SourceClass cls{};
        bool we_dialed = false;
        PatchSet told;   // patches we sent our Have for
        PatchSet heard;  // patches the peer sent its Have for
        PatchSet full;   // patches the peer holds whole: no HaveOne for them
        std::uint64_t queued = 0;     // bytes the driver reports queued on it
        std::uint64_t reading = 0;    // bytes of Serves not yet carried out
        std::map<std::pair<PatchId, std::uint32_t>, std::uint32_t, KeyLess> serving;  // those Serves
    };
    struct Patch {
        PatchShape shape;
        std::uint32_t index = 0;  // names it in upload cookies
        Bitfield held;
        std::optional<Download> dl;
        std::optional<SuperSeeding> superseed;
        // The origin's reserve toward devices of a domain without a super-node
        // here, one per such domain (reserve_of): at most kReserveDomains.
        std::map<std::string, SuperSeeding, std::less<>> domain_reserve;
        // A device's pacing toward its own domain: when each segment was last
        // queued for or handed to a peer of the domain (peer_pace).
        std::optional<SuperSeeding> paced;
        PatchStats stats;
        std::map<std::pair<ConnId, std::uint32_t>, std::uint32_t> partial;  // bytes of a segment arrived
        std::map<std::pair<ConnId, std::uint32_t>, NodeKey> storing;        // Store actions out, and from whom
        bool paused = false;
        bool completed = false;
        bool announced = false;
        std::uint32_t announced_held = 0;
        Millis last_announce = 0;
        Millis next_lookup = 0;
        Millis lookup_gap = 0;  // the current interval (back-off)
        std::uint64_t lookups = 0;
        bool domain_lookup_pending = false;  // the first own-domain lookup is under way
        bool domain_looked_up = false;
        Millis last_served = 0;
        Millis last_far_lookup = 0;  // 0 = never
        // Import coordination: a super-node's shares and what each device was
        // last told; a device's assigning super-node.
        std::optional<ImportShares> shares;
        std::map<ConnId, Bitfield> assigned;
        Millis next_coordinate = 0;
        std::optional<ConnId> assigner;
    };

    Patch* patch(const PatchId& p);
    Conn* conn(ConnId c);
    SourceClass classify_holder(Role role, const std::string& domain) const;
    void send_have(ConnId c, Conn& k, const PatchId& id, Patch& s);
    void tell_connecting(Patch& s);
    void tell_connecting_all();
    void pump_requests(const PatchId& id, Patch& s, Instant now);
    void pump_uploads(Instant now);
    void coordinate(const PatchId& id, Patch& s, Instant now);
    void prefer_nearby(const PatchId& id, Patch& s, std::uint32_t seg);
    void coordinate_all(Instant now);
    double self_weight(const Patch& s, const std::vector<ConnId>& devices) const;
    bool outruns_devices() const;
    SuperSeeding* reserve_of(Patch& s, const Conn& k, bool create);
    static constexpr std::size_t kReserveDomains = 4096;  // domains with a reserve of their own, per patch
    void assigner_gone(ConnId c);
    void run_steps(const PatchId& id, Patch& s, std::vector<Action>& steps);
    void dial(const Holder& h);
    void dial_domain_supers();
    void announce(const PatchId& id, Patch& s, Instant now);
    void lookup(const PatchId& id, Patch& s, Instant now);
    void closing(ConnId c, CloseWhy why, std::string reason);
    void count_conn(const PeerIdentity& who, int by);
    bool forget_conn(ConnId c);
    bool wants_downloading(const Patch& s) const { return s.dl && !s.dl->complete() && !s.paused; }
    std::uint64_t buffered() const { return buffered_; }
    void sample_drain(Millis now);
    Millis pace_for(const Patch& s) const;
    void set_queued(Conn& k, std::uint64_t queued);
    void serve_done(ConnId c, const PatchId& p, Segment seg);
    static std::uint64_t cookie(const Patch& s, std::uint32_t seg) { return std::uint64_t{s.index} << 32 | seg; }

    EngineConfig cfg_;
    Rng rng_;
    std::map<ConnId, Conn> conns_;
    std::map<NodeKey, ConnId, KeyLess> by_key_;
    std::map<NodeKey, SourceClass, KeyLess> dialing_;  // dials under way, by the key expected
    std::map<PatchId, Patch, KeyLess> patches_;
    std::vector<PatchId> by_index_;
    Uploads uploads_;
    std::uint64_t refused_by_policy_ = 0;
    TokenBucket download_bucket_;
    std::vector<EngineAction> out_;
    std::vector<Action> steps_;
    std::vector<Holder> supers_;  // the own domain's super-nodes the driver knows of
    std::uint64_t buffered_ = 0;  // queued + reading over every connection
    // The uplink's drain rate (peer_pace): segment bytes handed out, and the
    // bytes gone from the buffers by the start of the current window.
    std::uint64_t handed_ = 0;
    Millis drain_at_ = 0;
    std::uint64_t drained_at_ = 0;
    double drain_rate_ = 0;  // bytes per ms over the last whole window
    // Counts over conns_ kept as connections come and go, so that a request
    // does not walk every connection (the origin and super-nodes have thousands):
    std::uint64_t own_devices_ = 0;  // devices of the own domain (outruns_devices)
    std::map<std::string, std::uint32_t, std::less<>> supers_by_domain_;  // super-nodes, by domain (reserve_of)
    std::vector<PeerId> requesters_;  // prefer_nearby()'s scratch
};

}  // namespace ps::core
