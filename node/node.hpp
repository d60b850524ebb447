// The node: composition of the sans-IO download core, the encrypted libuv
// streams, the DHT and the segment store, all on one libuv loop thread.
//
// A node serves every patch it holds (whole files for the origin, finished and
// partial downloads for everyone), announces itself as a holder in the DHT under
// its domain's key (origins and super-nodes also under the cross-domain key), and
// downloads patches by finding holders there and asking the core which segment
// to request from whom.
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "core/backoff.hpp"
#include "core/engine.hpp"
#include "core/histogram.hpp"
#include "crypto/crypto.hpp"
#include "dht/dht.hpp"
#include "node/enroll.hpp"
#include "node/store.hpp"
#include "node/trust.hpp"
#include "portmap/portmap.hpp"
#include "transfer/connection.hpp"
#include "transfer/loop.hpp"
#include "transfer/multicast.hpp"
#include "wire/messages.hpp"
#include "wire/summary.hpp"
#include "wire/statement.hpp"

namespace ps::node {

struct NodeOptions {
    std::string data_dir;
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 0;      // 0 = ephemeral
    std::string advertise_host;         // what holder records say; default listen_host
    // Set by the operator (node.advertise), not worked out: kept even when
    // the DHT's nodes see us from another address (a port forward).
    bool advertise_configured = false;
    // Port mapping on the LAN's gateway (UPnP IGD, NAT-PMP) once DHT nodes
    // show this node unreachable (node_portmap.cpp); both off: never asked.
    bool portmap_upnp = true, portmap_natpmp = true;
    // LAN discovery (node_lan.cpp): multicast beacons to this group and port,
    // and a ping to the DHT port of each node heard. IPv4.
    bool lan_discovery = false;
    std::string lan_group = "239.255.83.76";
    std::uint16_t lan_port = 7409;
    dht::Config dht;
    core::DownloadConfig download;
    core::Uploads::Config uploads;       // upload slots and per-peer queue
    std::uint64_t upload_rate = 0;       // bytes/s, 0 = unlimited
    std::uint64_t uplink_capacity = 0;   // bytes/s, 0 = unknown (core::EngineConfig)
    std::uint64_t device_uplink = 0;     // bytes/s, 0 = unknown (core::EngineConfig)
    std::uint64_t download_rate = 0;     // bytes/s, 0 = unlimited
    // Upload bytes queued in socket buffers across all connections; beyond it
    // no new segment is read from disk (bounds memory whatever the peer count).
    std::size_t upload_buffer = 8u << 20;
    std::size_t max_peers = 32;         // connections at once
    std::uint64_t lookup_interval_ms = 1'000;
    std::uint64_t handshake_timeout_ms = 10'000;
    // Hostile-network limits (docs/security.md, "Named limits").
    // Idle timeout: an authenticated connection whose peer sends nothing but
    // keepalives for this long is closed (0 = never). Only what the peer sends
    // counts: what we send it (Haves) would keep a silent squatter alive.
    std::uint64_t idle_timeout_ms = 120'000;
    // Per-address cap: inbound connections (handshake under way or done) from
    // one IP address at once; more are closed as they are accepted (0 = none).
    std::size_t max_inbound_per_address = 8;
    // Whether that cap counts loopback addresses too. Off by default: demos and
    // tests run many nodes on 127.0.0.1, and a local user is not the attacker.
    bool cap_loopback = false;
    // Write-queue cap: bytes queued to one peer (Data, Reject, Have, Peers,
    // Announce alike); a peer that lets more pile up, by not reading, is
    // disconnected. Uploads stay far below it (conn_high_water + a segment).
    std::size_t max_queued_per_peer = transfer::Connection::kMaxQueued;
    // Contact dials: a contact learnt from others that does not come up is
    // dialled again after contact_retry_ms, then 3x and 9x that, and forgotten
    // after contact_dial_attempts failures in a row (a refused dial counts).
    int contact_dial_attempts = 3;
    std::uint64_t contact_retry_ms = 10'000;
    // Dial rate: no address (host:port) is dialled more often than this in
    // any minute, whoever asks (gossip, holder records, the engine).
    std::size_t max_dials_per_address_per_minute = 6;
    // Fault injection for tests only: flip one byte of every segment uploaded.
    bool fault_corrupt_uploads = false;
    // Operator keys: manifests announced by gossip are believed and forwarded
    // only when they verify under this store. Without it, gossip is ignored.
    std::optional<TrustStore> trust;
    // Called on the loop thread when a signed operator statement (gossip, the
    // DHT or publish_statement) changed the trust store: a key rotation or a
    // certificate revocation. The daemon writes the trust file.
    std::function<void(const TrustStore&)> on_trust_changed;
    // Called once per new manifest that verified (gossip or announce_manifest).
    std::function<void(const VerifiedManifest&)> on_announce;
    // Origin only: a segment is handed out again only after this (super-seeding).
    std::uint64_t superseed_reserve_ms = core::EngineConfig{}.superseed_reserve;
    // Freshness (node_statements.cpp): an enrolled origin signs a freshness
    // statement this often (0 = never) and gossips it; a node that has seen no
    // valid one issued within freshness_window_s says it is stale (0 = off).
    std::uint64_t freshness_interval_ms = wire::kFreshnessIntervalMs;
    std::int64_t freshness_window_s = 0;
    // Patch names whose announcements this node also follows in the DHT (under
    // dht::manifest_key(name)), besides gossip.
    std::vector<std::string> watch;
    std::size_t known_contacts = 128;  // the passive view: contacts kept to dial later
    std::size_t gossip_peers = 4;      // connections kept even with nothing to fetch
    // Fault injection for tests only: accept requests and never answer them.
    bool fault_ignore_requests = false;
    // The background scrub: bytes/s of held segments re-checked against the
    // manifest off the loop thread (0 = off). A pass over a patch at this rate
    // bounds how long a fault that leaves the file's identity unchanged (a bad
    // sector, a write below the file system) can go unnoticed.
    std::uint64_t scrub_rate = 8u << 20;
    // Fault injection for tests only: called with each message a peer sent,
    // before it is handled; it may throw, as handling could (out of memory).
    std::function<void(const wire::Message&)> fault_on_message;
};

// Per patch, what moved and where it came from (kept by the engine).
using SwarmStats = core::PatchStats;

// Joining the DHT, as `status` shows it. A node pings its bootstrap nodes with
// back-off (1 s doubling to 60 s, +-25%) until one answers, and again whenever
// its routing table empties.
struct DhtJoin {
    enum class State { Waiting, Connecting, Connected };
    State state = State::Waiting;  // Waiting: no bootstrap node configured and nobody joined us yet
    std::uint64_t since_ms = 0;    // loop time the state began
    std::uint32_t attempts = 0;    // bootstrap attempts since it began
    std::uint64_t next_retry_ms = 0;  // loop time of the next attempt; 0 = none planned
    bool pinging = false;             // an attempt is waiting for its answers
    std::vector<std::string> bootstrap;   // the configured entries
    std::vector<std::string> unanswered;  // of the last attempt
};
const char* to_string(DhtJoin::State);

// The bytes of the segments `held` marks (the last segment may be shorter).
std::uint64_t held_bytes(const Bitfield& held, const wire::Manifest& m);

// A download's holder lookups (the engine's schedule, read only).
struct LookupStatus {
    std::size_t holders = 0;          // holders of the patch connected now
    std::uint64_t lookups = 0;        // DHT lookups so far
    std::uint64_t next_lookup_ms = 0; // loop time of the next one
};

// A patch as `patchswarm status` shows it.
struct SwarmStatus {
    Hash32 id{};
    std::string name;
    std::uint64_t version = 0;
    std::uint64_t total_size = 0;
    std::uint32_t segments = 0;
    std::uint32_t held = 0;
    std::uint64_t held_bytes = 0;  // the held segments' bytes (the last one may be shorter)
    bool downloading = false;  // false: serving only
    bool paused = false;
    bool complete = false;
    double rate_down = 0;  // bytes/s over the last seconds
    double rate_up = 0;
    std::string out_path;
    std::uint64_t last_served_ms = 0;  // loop time of the last request taken or segment sent; 0 = never
    LookupStatus lookup;
    SwarmStats stats;
};

struct NodeStatus {
    crypto::PublicKey key{};
    Role role = Role::Peer;
    std::string domain;
    std::uint16_t listen_port = 0;
    std::uint16_t dht_port = 0;
    std::size_t peers = 0;          // authenticated connections
    std::size_t queued_bytes = 0;   // waiting to go out, over every connection (with each write's overhead)
    std::size_t dht_nodes = 0;      // good DHT routing-table entries
    std::size_t upload_peers = 0;   // peers holding an upload slot
    std::size_t contacts = 0;       // passive view
    std::uint64_t announces_received = 0, announces_rejected = 0;
    std::uint64_t upload_rate_limit = 0, download_rate_limit = 0;
    dht::Stats dht;
    DhtJoin dht_join;
    std::uint64_t now_ms = 0;  // the loop time these were taken at
    // Segment fetch times (request sent to segment verified and written), by source class.
    std::array<core::Histogram, core::kSourceClasses> fetch_seconds{};
    std::uint64_t segment_hashes = 0;  // by the segment stores: storing, serving, passes, scrub
    std::uint64_t scrub_dropped = 0;   // held segments the scrub found damaged and dropped
    // Enrollment refusals (node/enroll.hpp), by kind: peers refused at the
    // handshake, and holder/membership records dropped when read from the DHT.
    bool enrollment_required = false;
    CertCounters peers_refused, records_refused;
    // Signed operator statements: received (gossip, DHT), refused, and known.
    std::uint64_t statements_received = 0, statements_rejected = 0;
    std::size_t statements_known = 0;
    std::size_t trusted_keys = 0, revoked_keys = 0;  // the trust store now
    // Freshness: the issue time of the newest valid freshness statement (0:
    // none seen), and whether it is older than the window (false when off).
    std::int64_t fresh_issued = 0;
    bool stale = false;
    std::uint64_t freshness_rejected = 0;
    std::vector<SwarmStatus> swarms;
    // Whether other nodes can dial the advertised address (node_reach.cpp):
    // "unknown" until DHT nodes report where they see us from, "reachable",
    // "unreachable" (they see another address: a NAT; nothing is advertised),
    // or "configured" (they see another address, but the operator set it).
    std::string reachability = "unknown";
    std::vector<std::string> seen_as;  // the addresses DHT nodes see us at, most reported first
    std::string advertise;             // host:port in our records now (a mapped one included)
    std::string portmap;               // the gateway's mapping in use (portmap::describe), "" none
    std::string portmap_error;         // why the last attempt failed, "" none
    // LAN discovery (node_lan.cpp): on, and its beacons sent, heard (ours
    // excluded), refused (malformed), and distinct DHT nodes found.
    bool lan_discovery = false;
    struct LanCounts {
        std::uint64_t sent = 0, heard = 0, refused = 0, found = 0;
    } lan;
};

// A patch's rollout as the DHT shows it: per domain, the holder records of the
// nodes taking part (complete or not) and the nodes online (membership records).
// Gathered from the network, not from a database: a node that went offline
// withdrew its records and is no longer counted. One DHT get returns at most
// dht::Config::max_values_per_get values per key, so counts stop there.
struct RolloutDomain {
    std::string domain;
    std::uint32_t online = 0;      // membership records (nodes running now)
    std::uint32_t holders = 0;     // holder records for the patch
    std::uint32_t complete = 0;    // ...of which hold every segment
    std::uint32_t supers = 0, supers_complete = 0;
    std::uint64_t segments_held = 0, segments_total = 0;  // summed over holders
};
struct Rollout {
    Hash32 id{};
    std::vector<RolloutDomain> domains;  // sorted by name
    bool capped = false;                 // some key returned the most values one get allows
};

class Node final : public transfer::ConnectionHandler {
public:
    using Done = std::function<void(Status)>;

    Node(transfer::Loop& loop, NodeOptions opts, transfer::Identity identity);
    ~Node() override;

    // Opens the listener and joins the DHT.
    Status start();
    // Serves a complete patch file (each segment checked against the manifest).
    Status serve(const VerifiedManifest& vm, const std::string& file);
    // Downloads a patch into the data folder, then copies it to out_path and
    // calls on_complete. Keeps serving it afterwards.
    Status fetch(const VerifiedManifest& vm, const std::string& out_path, Done on_complete);
    // Changes the rate limits (bytes/s, 0 = unlimited) while running.
    void set_rate_limits(std::uint64_t upload, std::uint64_t download);
    // A device policy refuses every upload while set (core::Engine::set_uploads_refused);
    // the requests answered busy because of it, since start.
    void set_uploads_refused(bool refused);
    std::uint64_t uploads_refused_by_policy() const;
    // Changes the number of upload slots while running.
    void set_upload_slots(std::uint32_t slots);
    // Withdraws DHT records, closes every connection, stops the DHT; then `done`.
    void shutdown(std::function<void()> done);

    const SwarmStats* stats(const Hash32& manifest_id) const;
    NodeStatus status() const;
    // Pause stops requesting segments (serving goes on); resume restarts it.
    Status pause(const Hash32& manifest_id);
    Status resume(const Hash32& manifest_id);
    // Stops taking part in a patch: withdraws its record, forgets its state and
    // deletes its download folder (not an exported copy, nor a served file).
    Status remove(const Hash32& manifest_id);
    // The patches taking part, for lookups by name.
    std::vector<Hash32> swarm_ids() const;
    // A signed operator statement from the operator (control socket): checked
    // and applied as if it came by gossip, then spread to every peer and put in
    // the DHT under dht::statements_key(). Fails naming the problem.
    Status publish_statement(ByteView statement);
    // Spreads a verified manifest to every connected peer (and to each peer that
    // connects later); peers verify and forward it in turn.
    void announce_manifest(const VerifiedManifest& vm);
    // The newest verified manifest of a patch name: asks the DHT (under
    // dht::manifest_key(name)) and also answers from what gossip brought.
    // Verified manifests found are handled as announcements (on_announce).
    void find_manifest(const std::string& name, std::function<void(std::optional<VerifiedManifest>)> done);
    // Counts, per domain, who holds a patch and who completed it (see Rollout).
    // Domains are those with super-nodes or origins in the cross-domain
    // membership key, plus this node's own and any in `extra_domains`.
    // With own_domain_only, this node's domain alone (two gets).
    void rollout(const Hash32& manifest_id, std::vector<std::string> extra_domains, std::function<void(Rollout)> done,
                 bool own_domain_only = false);
    // The dashboard's network side (node/dashboard.hpp): a super-node puts its
    // signed summary of its domain under dht::summary_key(manifest_id),
    // replacing its previous one; readers take, per domain, the freshest
    // summary (at most max_age_s old) whose signer has a super-node membership
    // record of that domain under the cross-domain key.
    void put_summary(const wire::DomainSummary& s);
    void domain_summaries(const Hash32& manifest_id, std::int64_t max_age_s,
                          std::function<void(std::vector<wire::DomainSummary>)> done);
    // The newest verified manifest seen per patch name.
    const std::map<std::string, VerifiedManifest>& latest_manifests() const { return latest_; }
    std::uint16_t listen_port() const;
    std::uint16_t dht_port() const;
    std::size_t connected_peers() const { return engine_.peer_count(); }
    const transfer::Identity& identity() const { return self_; }

    // transfer::ConnectionHandler
    void on_ready(transfer::Connection& c) override;
    void on_message(transfer::Connection& c, ByteView frame) override;
    void on_writable(transfer::Connection& c) override;
    void on_closed(transfer::Connection& c, transfer::CloseCode code, const std::string& reason) override;

private:
    struct Peer {
        std::unique_ptr<transfer::Connection> conn;
        std::optional<crypto::PublicKey> dialed;  // the key we dialed for
        bool up = false;                          // the engine knows it
        std::string inbound_ip;                   // accepted connections: the peer's IP address
        std::uint64_t last_useful_ms = 0;         // loop time of the last message but a keepalive
        bool heard_peers = false;                 // a Peers message came (only the first counts)
    };
    // What the driver keeps of a patch; its protocol state is the engine's.
    struct Swarm {
        VerifiedManifest vm;
        std::shared_ptr<SegmentStore> store;  // shared with I/O running on the thread pool
        bool syncing = false;
        bool finishing = false;  // complete; exporting once everything is durable
        bool downloading = false;
        std::string out_path;
        Done on_complete;
        std::map<std::pair<std::uint64_t, std::uint32_t>, Bytes> partial;  // segments arriving, by (connection, segment)
        // Requests out, by (connection, segment): when sent and to which source class (fetch times).
        std::map<std::pair<std::uint64_t, std::uint32_t>, std::pair<std::uint64_t, core::SourceClass>> asked;
        // The holder record in the DHT.
        std::uint64_t value_id = 0;
        std::uint64_t seq = 0;
        // Holder-record puts not yet acknowledged, and whether the record changed
        // meanwhile: OpenDHT 2.4 can drop an update of a value whose previous put
        // is still under way, so updates wait for the previous put (docs/dht.md).
        int puts_in_flight = 0;
        std::uint64_t put_gen = 0;  // which put the acknowledgements are for
        std::uint64_t put_started_ms = 0;
        std::uint64_t last_put_ms = 0;  // the last holder-record put
        bool put_again = false;
        bool announced_full = false;  // the last record put said "every segment"
        bool announced = false;
        std::string dir;  // download folder, empty for a served file
        // Rates: byte counters at the last sample, and the smoothed rates.
        std::uint64_t sample_down = 0, sample_up = 0, sample_ms = 0;
        double rate_down = 0, rate_up = 0;
    };

    void add_swarm(Swarm s, bool download);
    core::Instant now() const { return core::Instant{loop_.now_ms()}; }
    // Carries out what the engine asked for, then re-arms the deadline timer.
    void run_actions();
    void carry_out(core::EngineAction& a);
    void store_segment(const core::act::Store& a);
    void serve_segment(const core::act::Serve& a);
    void arm();
    void housekeeping();
    void watch_dht();
    void ping_bootstrap();
    void on_bootstrap_answers(std::vector<std::string> answered);
    void set_join_state(DhtJoin::State st);
    void accept(std::unique_ptr<transfer::Connection> c);
    void close_idle(std::uint64_t now_ms);
    void lookup(const Hash32& id, bool far);
    // Enrollment (node_join.cpp): whether the trust store requires it; the
    // check of a peer that finished its handshake (closes it when refused);
    // select_holders with this node's check of each record's certificate.
    bool enrollment_required() const { return opts_.trust && opts_.trust->require_enrollment(); }
    bool admit_peer(transfer::Connection& c);
    // Signed operator statements (node_statements.cpp): checks one under the
    // trust store, applies it, forwards it to every peer but `from`.
    Status on_statement(Peer* from, ByteView statement);
    void fetch_statements();  // from the DHT, at start and in watch_dht
    Status on_freshness(Peer* from, const wire::Statement& st, ByteView bytes);
    void refresh_freshness();  // origin: sign and spread a new one when due (housekeeping)
    std::vector<wire::HolderRecord> holders_in(const std::vector<Bytes>& values, std::string_view domain,
                                               const Hash32& id, std::size_t max_records = 64);
    wire::HolderRecord own_record() const;  // role, domain, host, certificate
    void on_holders(const Hash32& id, const std::string& domain, std::vector<Bytes> values);
    void on_announce(Peer* from, ByteView manifest);
    void on_peers(Peer& from, const std::vector<wire::Contact>& contacts);
    void remember(const wire::Contact& c);
    void contact_failed(const crypto::PublicKey& key);
    bool dial_allowed(const std::string& address, bool count);
    void feed_domain_supers();
    void join_gossip();
    wire::MsgPeers peers_msg() const;
    void announce_member();
    // node_reach.cpp
    enum class Reach : std::uint8_t { Unknown, Reachable, Unreachable, Configured };
    void check_reachability();
    bool advertising() const { return reach_ != Reach::Unreachable; }
    std::string reachability() const;
    void withdraw_records();
    void announce_records();
    // node_lan.cpp
    void lan_start();
    void lan_tick();
    void on_beacon(ByteView data, const std::string& from);
    // node_portmap.cpp
    void portmap_tick();
    void portmap_start(bool renewal);
    void portmap_done(Result<portmap::Mapping> r, bool renewal);
    void portmap_release();
    void portmap_join();
    std::uint16_t advertised_port() const;
    void check_watched();
    void dial(const core::Holder& h);
    void announce(Swarm& s, std::uint32_t held, std::uint32_t segments);
    void send_msg(Peer& p, const wire::Message& m);
    Peer* ready_peer(core::ConnId c);
    void finish(Swarm& s);
    void sync_store(Swarm& s);
    void scrub();
    Swarm* swarm(const Hash32& id);

    transfer::Loop& loop_;
    NodeOptions opts_;
    transfer::Identity self_;
    core::Engine engine_;
    std::unique_ptr<transfer::Listener> listener_;
    std::unique_ptr<dht::Node> dht_;
    std::unique_ptr<transfer::Timer> deadline_;   // at the engine's next deadline
    std::unique_ptr<transfer::Timer> house_;      // the driver's own chores, once a second
    std::unique_ptr<transfer::Timer> join_timer_; // the next bootstrap attempt
    DhtJoin join_;
    std::array<core::Histogram, core::kSourceClasses> fetch_seconds_{};
    void fetch_timed(Swarm& s, std::uint64_t conn, std::uint32_t seg, bool stored);
    core::Backoff join_backoff_{1'000, 60'000};
    Rng join_rng_{crypto::random_u64()};
    bool arm_posted_ = false;
    std::map<std::uint64_t, Peer> peers_;  // by connection id (= core::ConnId)
    std::map<Hash32, Swarm> swarms_;
    std::map<std::string, VerifiedManifest> latest_;  // by patch name
    std::set<Hash32> seen_manifests_;                 // gossip duplicate suppression
    // A contact of the passive view, and how dialling it went.
    struct Known {
        wire::Contact c;
        int failures = 0;            // dials in a row that did not come up
        std::uint64_t retry_ms = 0;  // loop time before which it is not dialled
        bool proven = false;         // a dial to it came up: the address is its own
    };
    std::map<crypto::PublicKey, Known> contacts_;
    // Other domains, by the super-nodes the global key names: where a device
    // with an import share looks for holders afar (kFarDomainsKept at most).
    std::vector<std::string> far_domains_;
    std::map<std::string, std::deque<std::uint64_t>> dials_;  // host:port -> loop times of dials in the last minute
    std::uint64_t member_value_id_ = 0;
    std::uint64_t summary_seq_ = 0;
    std::uint64_t member_seq_ = 0;
    std::uint64_t last_join_ms_ = 0, last_member_ms_ = 0, last_watch_ms_ = 0;
    Reach reach_ = Reach::Unknown;
    std::uint64_t next_reach_check_ms_ = 0;
    std::vector<std::string> seen_as_;
    // The gateway's port mapping (node_portmap.cpp). The blocking requests run
    // on portmap_thread_; their answer comes back through loop_.post.
    std::optional<portmap::Mapping> mapping_;
    std::string unmapped_host_;  // opts_.advertise_host before a mapping replaced it
    std::string portmap_error_;
    std::thread portmap_thread_;
    std::shared_ptr<std::atomic<bool>> portmap_cancel_ = std::make_shared<std::atomic<bool>>(false);
    bool portmap_busy_ = false;
    std::uint64_t next_portmap_ms_ = 0;
    int portmap_failures_ = 0;
    // LAN discovery (node_lan.cpp)
    std::unique_ptr<transfer::MulticastSocket> lan_;
    std::uint64_t lan_sender_ = 0, next_beacon_ms_ = 0;
    std::map<std::string, std::uint64_t> lan_pinged_;  // "ip:port" -> loop time pinged
    std::set<std::string> lan_found_;
    NodeStatus::LanCounts lan_counts_;
    std::vector<dht::ListenToken> watch_listens_;
    std::uint64_t announces_received_ = 0, announces_rejected_ = 0;
    CertCounters peers_refused_, records_refused_;
    std::shared_ptr<SharedTrust> live_trust_;  // what the DHT's policies read
    dht::ListenToken statements_listen_ = 0;
    std::map<Hash32, Bytes> statements_;       // valid statements seen, by id (sent to each new peer)
    std::uint64_t statements_received_ = 0, statements_rejected_ = 0;
    std::int64_t fresh_issued_ = 0;  // newest valid freshness statement's issue time
    Bytes fresh_bytes_;              // ...and the statement (sent to each new peer)
    std::uint64_t fresh_sent_ms_ = 0, fresh_seq_ = 0, freshness_rejected_ = 0;
    bool scrub_running_ = false;
    Hash32 scrub_last_{};  // the patch the last scrub step checked (round robin)
    std::uint64_t scrub_dropped_ = 0;
    std::uint64_t hashes_of_removed_ = 0;  // segment_hashes of stores no longer here
    Bytes scratch_;
    bool stopping_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ps::node
