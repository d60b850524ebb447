// dht/dht: the node's handle on the OpenDHT (Kademlia) overlay, used only to
// publish and find signed holder records (wire/record.hpp) under the keys of
// dht/keys.hpp. OpenDHT stays behind this pimpl: no OpenDHT type, header or
// exception crosses this interface.
//
// Threading: OpenDHT runs on its own threads (a DhtRunner: DHT loop + UDP
// receive). Every callback of this class is handed to `post` and therefore runs
// on the caller's event-loop thread, never on an OpenDHT thread. Node's methods
// are called from that same loop thread (one thread at a time).
// Lifetimes, limits and the value type: docs/dht.md.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "dht/datagram.hpp"
#include "dht/keys.hpp"
#include "wire/record.hpp"

namespace ps::dht {

// Runs fn on the node's event-loop thread (the lead's libuv loop posts through a
// uv_async). Must be thread-safe: OpenDHT threads call it.
using Post = std::function<void(std::function<void()>)>;

// OpenDHT value type of holder records; registered on every node at start.
inline constexpr std::uint16_t kHolderValueType = 0x5A01;
// OpenDHT value type of manifest announcements (a signed manifest stored under
// manifest_key(name)); storing nodes check its structure, readers its signature.
inline constexpr std::uint16_t kManifestValueType = 0x5A02;

// OpenDHT value type of per-domain rollout summaries (wire/summary.hpp) under
// summary_key(manifest_id); storing nodes keep only valid ones (dht/summary_type.cpp).
inline constexpr std::uint16_t kSummaryValueType = 0x5A03;
// OpenDHT value type of signed operator statements (wire/statement.hpp), all
// under statements_key(); storing nodes check them (Config::statement_check).
inline constexpr std::uint16_t kStatementValueType = 0x5A04;

// Which kind of value an operation is about.
enum class ValueKind : std::uint16_t {
    Holder = kHolderValueType,
    Manifest = kManifestValueType,
    Summary = kSummaryValueType,
    Statement = kStatementValueType,
};
// Remote copies of a value expire this long after their last refresh; an
// announcing node refreshes 10 s before that (OpenDHT REANNOUNCE_MARGIN).
inline constexpr std::int64_t kHolderValueExpirySeconds = 600;
// OpenDHT 2.4.12's real ceiling for an unsigned value: a larger put is not
// refused by OpenDHT but fails remotely after 8-10 s; here it is refused at once.
inline constexpr std::size_t kMaxValueBytes = 65530;

struct Config {
    std::string bind4 = "127.0.0.1";  // IPv4 bind address; "" = no IPv4 socket
    // IPv6 bind address; production "::". Must bind: start() fails when it does not
    // (OpenDHT 2.4.12 on an IPv4-only node cannot cancel a listen). "" disables
    // IPv6 deliberately; listen() then refuses (returns 0).
    std::string bind6 = "::1";
    std::uint16_t port = 0;              // 0 = ephemeral (IPv6 reuses the IPv4 port when free)
    std::vector<std::string> bootstrap;  // "host:port": "127.0.0.1:4222", "[::1]:4222", "seed.example:4222"
    std::uint32_t network_id = 0x50A7C4;
    // Per-source-IP request limit of OpenDHT: 0 = its default (max_req_per_sec/8),
    // -1 = none. Loopback test swarms share one IP and need -1.
    std::int64_t max_peer_req_per_sec = 0;
    // When true (the default), this node refuses to store, and to announce, any
    // holder value that is not a valid, fresh, signed record belonging to the
    // key (its domain key, or the global key for origins/super-nodes), and lets a
    // stored record be replaced only by one from the same node_key with seq >=.
    bool verify_records = true;
    std::int64_t record_max_age_s = 3600;  // freshness bound used by that check
    // Holder records: the node's enrollment check (its certificate under the
    // node's trust store, node/enroll.hpp). When set, storing nodes refuse, and
    // announce() refuses, records that fail it. Runs on OpenDHT's threads:
    // must be thread-safe and quick. Empty: no enrollment check.
    std::function<bool(const wire::HolderRecord&)> record_check;
    // Statement values (kStatementValueType): with verify_records, storing nodes
    // and announce() keep only values that decode as a signed statement under
    // statements_key() and, when set, pass this check (the signer is trusted by
    // the node's trust store). Thread-safe and quick, like manifest_check.
    std::function<bool(ByteView)> statement_check;
    // Most values one get() returns (distinct OpenDHT value ids); the rest are
    // dropped and counted (whoever can put values under a key must not flood a device reading it).
    std::size_t max_values_per_get = 256;
    // Manifest values (kManifestValueType): checks one (its signature under the
    // node's trust store) and returns its version, or nothing to drop it. Runs
    // on OpenDHT's threads: must be thread-safe and quick. When set, storing
    // nodes refuse a manifest older than the newest they hold under that name
    // (as a replacement of the same value or as a new one), and readers drop
    // what fails it. Empty: structure only, and no version order on storing
    // nodes (an unverified "newest" could be a forgery that locks the name).
    std::function<std::optional<std::uint64_t>(ByteView)> manifest_check;
    // Manifest values one get() returns (and one listen batch delivers): the
    // newest versions that pass the checks, newest first. Junk never takes a
    // place, so a flood of it cannot push the real manifest out.
    std::size_t max_manifests_per_get = 8;
    // Datagrams are checked before OpenDHT decodes them (dht/datagram.hpp):
    // larger ones, or ones nested deeper, are dropped unread.
    std::size_t max_datagram_bytes = 16 * 1024;
    std::size_t max_datagram_depth = 16;
    // Datagrams a second from one source IP (bursts of twice that); the rest
    // are dropped unread. 0 = 1000, unless max_peer_req_per_sec is -1 (then
    // none, as for loopback test swarms); -1 = no limit.
    std::int64_t max_datagrams_per_sec = 0;
};

// UDP datagrams one way through the node's DHT socket: all of them, and by
// kind (kind_name(k) for k < kDatagramKinds: ping, find, get, put, listen, ...).
struct Traffic {
    std::uint64_t packets = 0, bytes = 0;
    std::array<std::uint64_t, kDatagramKinds> by_kind{};
};
inline const char* kind_name(std::size_t kind) { return to_string(static_cast<DatagramKind>(kind)); }

struct Stats {
    std::uint64_t gets = 0, puts = 0, values_received = 0;
    std::uint64_t listens = 0;
    std::uint64_t values_dropped = 0;     // over max_values_per_get, or wrong size
    std::uint64_t announces_refused = 0;  // announce() refused locally (size, or record check)
    std::uint64_t stores_refused = 0;     // remote puts/edits this node refused to store
    std::uint64_t stores_older_refused = 0;  // of those: a manifest older than the one held
    std::uint64_t stores_unenrolled = 0;     // of those: a holder record refused by record_check
    // UDP datagrams dropped before OpenDHT saw them.
    std::uint64_t datagrams_too_large = 0, datagrams_malformed = 0, datagrams_rate_limited = 0;
    Traffic in, out;  // everything received (before the gate) and sent
};

using ListenToken = std::uint64_t;  // 0 = no listen
// values: values added under the key (expired=false) or that expired (expired=true).
using ListenCallback = std::function<void(std::vector<Bytes> values, bool expired)>;

class Node {
public:
    // Starts a threaded DhtRunner bound as configured, registers the holder value
    // type and starts bootstrapping (retried by OpenDHT while disconnected).
    // Errors: unparsable address/bootstrap, a socket that does not bind, or fds
    // too close to FD_SETSIZE (OpenDHT 2.4.12 select()s its fds and aborts the process on one >= FD_SETSIZE).
    // Every callback below is delivered through `post`, never on an OpenDHT thread.
    static Result<std::unique_ptr<Node>> start(const Config&, Post post);
    ~Node();  // joins OpenDHT's threads; pending callbacks are dropped. Call shutdown() first when possible.
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    std::uint16_t port() const;  // bound UDP port (IPv4, else IPv6)
    std::uint16_t port6() const; // bound IPv6 UDP port, 0 if none
    std::string id_hex() const;  // OpenDHT node id, 40 hex digits
    std::size_t good_nodes() const;  // good routing-table entries, IPv4 + IPv6
    // The addresses (host only, canonical literal) other DHT nodes report
    // seeing this node's requests come from, most reported first; empty until
    // some have answered. Behind a NAT this is the router's public address.
    std::vector<std::string> public_addresses() const;

    // Pings every bootstrap entry of the Config once more, each resolved again
    // off the loop thread, and calls done(answered): the entries that answered,
    // once every ping has an answer or has timed out (a few seconds). OpenDHT
    // itself retries only at 10 s, 20 s, 40 s ... without bound, so the caller
    // drives its own back-off with this. done({}) soon after shutdown(), with
    // no entries, or while the previous ping is still resolving.
    void ping_bootstrap(std::function<void(std::vector<std::string> answered)> done);
    const std::vector<std::string>& bootstrap_entries() const;
    // A DHT node found by other means (LAN discovery): pinged once, taken
    // into the routing table when it answers. An IP literal; anything else is ignored.
    void add_node(const std::string& ip, std::uint16_t port);

    // Publishes `value` under `key` and keeps it alive (refreshed before remote
    // copies expire) until withdraw() or shutdown(). Announcing again with the same
    // value_id replaces the previous value on this node and on storing nodes.
    // done(ok): after the first round of stores; ok=true does not prove that a
    // storing node accepted it: OpenDHT 2.4.12 reports success for a put that
    // storing nodes refused by policy. done(false) at once, without
    // publishing, for an empty or oversized value, a value that fails the record
    // check (Config::verify_records), or after shutdown().
    void announce(const Key&, std::uint64_t value_id, Bytes value, std::function<void(bool ok)> done = {},
                  ValueKind kind = ValueKind::Holder);
    // Stops refreshing (cancelPut) and drops the local copy; remote copies expire
    // within kHolderValueExpirySeconds (the protocol has no delete).
    void withdraw(const Key&, std::uint64_t value_id);
    // All raw holder values currently stored under key, one per OpenDHT value id
    // (the newest version seen), at most max_values_per_get. One callback, after
    // the lookup completes. Untrusted: filter with select_holders().
    // Manifest values: distinct manifests for the key's name that pass the
    // checks (Config::manifest_check), at most max_manifests_per_get, newest
    // version first, whatever order they arrived in.
    void get(const Key&, std::function<void(std::vector<Bytes>)> done, ValueKind kind = ValueKind::Holder);
    // Calls cb for values added under key (and expired ones) until cancel_listen.
    // Returns 0 (and never calls cb) after shutdown() or on an IPv4-only node.
    ListenToken listen(const Key&, ListenCallback cb, ValueKind kind = ValueKind::Holder);
    void cancel_listen(ListenToken);

    // Clean stop: cancels listens and puts, stops OpenDHT and joins its threads,
    // completes any get (with the values seen so far) and announce (ok=false)
    // still pending, then posts `done`. No callback runs after done. After done, destroy.
    void shutdown(std::function<void()> done);

    const Stats& stats() const;

private:
    struct Impl;
    explicit Node(std::unique_ptr<Impl>);
    std::unique_ptr<Impl> impl_;
};

}  // namespace ps::dht
