// With the other .cpp files of dht/ (dht_join, summary_type, statement_type), the only translation units that include OpenDHT (each third-party library is
// confined to one module, scripts/check_layering.py). Every OpenDHT
// call that can throw is wrapped; every OpenDHT callback only copies data and
// hands a closure to `post`.
#include "dht/dht.hpp"
#include "dht/dht_impl.hpp"

#include <opendht/dhtrunner.h>
#include <opendht/network_utils.h>
#include <opendht/value.h>

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <type_traits>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "crypto/crypto.hpp"
#include "dht/addr.hpp"
#include "dht/datagram.hpp"
#include "dht/filtered_socket.hpp"
#include "dht/newest_manifests.hpp"
#include "dht/statement_type.hpp"
#include "dht/summary_type.hpp"
#include "wire/manifest.hpp"
#include "wire/record.hpp"

namespace ps::dht {
namespace {

// fds a DhtRunner opens: 2 sockets + a stop pipe (2). OpenDHT 2.4.12 select()s
// on them and aborts the process on an fd >= FD_SETSIZE (FD_SET past the end of
// the fd_set is a fortified-libc abort); leave room
// for its socket re-opens on EPIPE/ECONNRESET too.
constexpr int kFdHeadroom = 16;

std::int64_t unix_now() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

od::InfoHash to_hash(const Key& k) { return od::InfoHash(k.data(), k.size()); }

Key to_key(const od::InfoHash& h) {
    Key k;
    std::copy_n(h.data(), k.size(), k.begin());
    return k;
}

Bytes to_bytes(const od::Blob& b) { return Bytes(b.begin(), b.end()); }

// A call into OpenDHT whose exception must not leave the adapter: on one, a
// default value (nothing for void).
template <typename F>
auto quietly(F&& f) {
    try {
        return f();
    } catch (const std::exception&) {
        if constexpr (!std::is_void_v<decltype(f())>) return decltype(f()){};
    }
}

// One get() in flight: filled on the OpenDHT thread, read on the loop thread
// after the DHT thread has handed it over through `post` (or after join()).
struct GetOp {
    std::mutex mu;
    std::map<od::Value::Id, std::pair<std::uint16_t, Bytes>> values;  // id -> (seq, data)
    // Manifest gets: (version, data), newest first, distinct data, at most cap.
    std::vector<std::pair<std::uint64_t, Bytes>> newest;
    std::uint64_t dropped = 0;
    std::size_t cap = 0;
    std::function<void(std::vector<Bytes>)> done;
};

// Keeps the `cap` newest versions, newest first, each data once. Returns false
// when the value found no place (older than all kept); a duplicate is no loss.
bool keep_newest(std::vector<std::pair<std::uint64_t, Bytes>>& newest, std::size_t cap, std::uint64_t version,
                 const od::Blob& data) {
    for (auto& [v, b] : newest)
        if (v == version && b.size() == data.size() && std::equal(b.begin(), b.end(), data.begin())) return true;
    if (cap == 0 || (newest.size() >= cap && version <= newest.back().first)) return false;
    if (newest.size() >= cap) newest.pop_back();
    auto at = std::find_if(newest.begin(), newest.end(), [&](const auto& e) { return e.first < version; });
    newest.emplace(at, version, to_bytes(data));
    return true;
}

using ManifestCheck = std::function<std::optional<std::uint64_t>(ByteView)>;
using RecordCheck = std::function<bool(const wire::HolderRecord&)>;

// The version of a manifest value stored under the key of its own patch name,
// after `check` (when set) accepted it; nothing for anything else. Never throws.
std::optional<std::uint64_t> manifest_version(const od::InfoHash& key, const od::Blob& data,
                                              const ManifestCheck& check) {
    try {
        if (data.empty() || data.size() > kMaxValueBytes) return std::nullopt;
        auto m = wire::decode_manifest(ByteView(data.data(), data.size()));
        if (!m || manifest_key(m->name) != to_key(key)) return std::nullopt;
        if (!check) return m->version;
        auto v = check(ByteView(data.data(), data.size()));
        if (!v || *v != m->version) return std::nullopt;
        return v;
    } catch (...) {
        return std::nullopt;
    }
}

}  // namespace

namespace {

// Record checks run by storing nodes (OpenDHT thread). Policies are only called
// for remote stores: the putting node's own copy is never checked, which is why
// announce() also checks.
// `unenrolled` is set when the record is refused by the enrollment check only.
bool acceptable(const od::InfoHash& key, const od::Value& v, std::int64_t max_age_s, const RecordCheck& check,
                std::optional<wire::HolderRecord>* out = nullptr, bool* unenrolled = nullptr) {
    if (v.data.size() > wire::kMaxRecordBytes) return false;
    auto rec = wire::decode_record(v.data, unix_now(), max_age_s);
    if (!rec || !record_fits_key(*rec, to_key(key))) return false;
    if (check && !check(*rec)) {
        if (unenrolled) *unenrolled = true;
        return false;
    }
    if (out) *out = std::move(*rec);
    return true;
}

bool value_acceptable(std::uint16_t type, const od::InfoHash& key, const od::Value& v, const Config& cfg) {
    if (type == kSummaryValueType) return summary_fits_key(v.data, to_key(key), unix_now());
    if (type == kStatementValueType) return statement_acceptable(key, v.data, cfg.statement_check);
    return type == kManifestValueType ? manifest_version(key, v.data, cfg.manifest_check).has_value()
                                      : acceptable(key, v, cfg.record_max_age_s, cfg.record_check);
}

}  // namespace

// Manifest announcements: a manifest stored under the key of its own patch name
// that passes cfg.manifest_check (when set). With a check, never an older
// version than the newest held: not as an edit of the same value (last writer
// wins otherwise) and not as a new value.
od::ValueType Node::Impl::manifest_type() const {
    const bool verify = cfg.verify_records;
    const ManifestCheck check = cfg.manifest_check;
    std::weak_ptr<Shared> weak = shared;
    auto admit = [verify, check, weak](const od::InfoHash& key, const std::shared_ptr<od::Value>& v,
                                       const std::shared_ptr<od::Value>& old_v) {
        if (!v) return false;
        if (!verify) return v->size() <= od::MAX_VALUE_SIZE;
        auto s = weak.lock();
        auto version = manifest_version(key, v->data, check);
        if (!version) {
            if (s) s->stores_refused++;
            return false;
        }
        if (!check || !s) return true;
        auto old_version = old_v ? manifest_version(key, old_v->data, {}) : std::nullopt;
        if ((old_version && *version < *old_version) || !s->newest_manifests.admit(key, *version)) {
            s->stores_refused++;
            s->stores_older_refused++;
            return false;
        }
        return true;
    };
    // On OpenDHT's thread: an exception refuses the value, never unwinds into it.
    auto store = [admit](od::InfoHash key, std::shared_ptr<od::Value>& v, const od::InfoHash&, const od::SockAddr&) {
        try {
            return admit(key, v, nullptr);
        } catch (...) {
            return false;
        }
    };
    auto edit = [admit](od::InfoHash key, const std::shared_ptr<od::Value>& old_v, std::shared_ptr<od::Value>& new_v,
                        const od::InfoHash&, const od::SockAddr&) {
        try {
            return admit(key, new_v, old_v);
        } catch (...) {
            return false;
        }
    };
    return od::ValueType(kManifestValueType, "patchswarm-manifest",
                         std::chrono::seconds(kHolderValueExpirySeconds), store, edit);
}

od::ValueType Node::Impl::holder_type() const {
    const bool verify = cfg.verify_records;
    const std::int64_t max_age = cfg.record_max_age_s;
    const RecordCheck check = cfg.record_check;
    std::weak_ptr<Shared> weak = shared;
    auto store = [verify, max_age, check, weak](od::InfoHash key, std::shared_ptr<od::Value>& v,
                                         const od::InfoHash&, const od::SockAddr&) {
        if (!v) return false;
        if (!verify) return v->size() <= od::MAX_VALUE_SIZE;
        bool ok = false, unenrolled = false;
        try {
            ok = acceptable(key, *v, max_age, check, nullptr, &unenrolled);
        } catch (...) {  // on OpenDHT's thread: refuse, never unwind into it
        }
        if (!ok)
            if (auto s = weak.lock()) {
                s->stores_refused++;
                if (unenrolled) s->stores_unenrolled++;
            }
        return ok;
    };
    // An edit replaces a stored value with the same OpenDHT id (an updated record).
    // Only the record's own node may do it, and never back to an older seq: this
    // stops a replay of an old record and a takeover by anyone who saw the id.
    auto edit = [verify, max_age, check, weak](od::InfoHash key, const std::shared_ptr<od::Value>& old_v,
                                        std::shared_ptr<od::Value>& new_v, const od::InfoHash&,
                                        const od::SockAddr&) {
        if (!new_v) return false;
        if (!verify) return new_v->size() <= od::MAX_VALUE_SIZE;
        bool ok = false, unenrolled = false;
        try {
            std::optional<wire::HolderRecord> nr;
            ok = acceptable(key, *new_v, max_age, check, &nr, &unenrolled);
            if (ok && old_v) {
                // The old copy may be stale by now; it still names its owner.
                auto orec = wire::decode_record(old_v->data, unix_now(),
                                                std::numeric_limits<std::int64_t>::max() / 2);
                if (orec && (orec->node_key != nr->node_key || nr->seq < orec->seq)) ok = false;
            }
        } catch (...) {  // on OpenDHT's thread: refuse, never unwind into it
            ok = false;
        }
        if (!ok)
            if (auto s = weak.lock()) {
                s->stores_refused++;
                if (unenrolled) s->stores_unenrolled++;
            }
        return ok;
    };
    return od::ValueType(kHolderValueType, "patchswarm-holder",
                         std::chrono::seconds(kHolderValueExpirySeconds), store, edit);
}

void Node::Impl::join() {
    if (pinger.joinable()) pinger.join();
    if (joined || !runner) return;
    joined = true;
    quietly([&] { runner->join(); });  // on failure the threads are gone or were never started
}

void Node::Impl::complete_pending() {
    // Each abort erases its own entry (and may run user code that adds none:
    // the node is stopping, so new ops complete through post instead).
    while (!shared->pending.empty()) {
        auto first = shared->pending.begin();
        const auto id = first->first;
        auto abort = first->second;
        abort();
        shared->pending.erase(id);
    }
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Node::~Node() {
    if (!impl_) return;
    impl_->shared->closed = true;
    impl_->join();
    // Pending completions hold the Shared block; drop them uncalled.
    impl_->shared->pending.clear();
}

Result<std::unique_ptr<Node>> Node::start(const Config& cfg, Post post) {
    if (!post) return err("dht: post function is empty");
    if (auto s = crypto::init(); !s) return std::move(s).take_error();
    if (cfg.bind4.empty() && cfg.bind6.empty()) return err("dht: neither bind4 nor bind6 is set");
    od::DhtRunner::Config rc;
    if (!cfg.bind4.empty()) {
        auto a = parse_ip(cfg.bind4, cfg.port);
        if (!a || a->ss.ss_family != AF_INET) return err("dht: bind4 '" + cfg.bind4 + "' is not an IPv4 address");
        rc.bind4 = to_sockaddr(*a);
    }
    if (!cfg.bind6.empty()) {
        auto a = parse_ip(cfg.bind6, cfg.port);
        if (!a || a->ss.ss_family != AF_INET6) return err("dht: bind6 '" + cfg.bind6 + "' is not an IPv6 address");
        rc.bind6 = to_sockaddr(*a);
    }
    std::vector<HostPort> boots;
    for (const auto& b : cfg.bootstrap) {
        auto hp = parse_host_port(b);
        if (!hp) return err("dht: bootstrap '" + b + "' is not host:port or [v6]:port");
        boots.push_back(std::move(*hp));
    }
    if (auto s = check_fd_headroom(kFdHeadroom); !s) return std::move(s).take_error();

    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    impl->shared->post = std::move(post);
    crypto::random_bytes(impl->salt.data(), impl->salt.size());
    rc.threaded = true;
    rc.dht_config.node_config.network = cfg.network_id;
    rc.dht_config.node_config.max_peer_req_per_sec = static_cast<ssize_t>(cfg.max_peer_req_per_sec);
    try {
        impl->runner = std::make_unique<od::DhtRunner>();
        od::DhtRunner::Context ctx;
        const double rate = cfg.max_datagrams_per_sec > 0    ? double(cfg.max_datagrams_per_sec)
                            : cfg.max_datagrams_per_sec < 0  ? 0.0
                            : cfg.max_peer_req_per_sec < 0   ? 0.0
                                                             : 1000.0;
        ctx.sock = std::make_unique<FilteredSocket>(rc.bind4, rc.bind6, cfg.max_datagram_bytes,
                                                    cfg.max_datagram_depth, rate, impl->shared->drops,
                                                    impl->shared->traffic);
        impl->runner->run(rc, std::move(ctx));
        impl->runner->registerType(impl->holder_type());
        impl->runner->registerType(impl->manifest_type());
        auto refused = [w = std::weak_ptr(impl->shared)] { if (auto s = w.lock()) s->stores_refused++; };
        impl->runner->registerType(summary_value_type(cfg.verify_records, refused));
        impl->runner->registerType(statement_value_type(cfg.verify_records, cfg.statement_check, refused));
        impl->port4 = impl->runner->getBoundPort(AF_INET);
        impl->port6 = impl->runner->getBoundPort(AF_INET6);
        impl->id_hex = impl->runner->getNodeId().toString();
    } catch (const std::exception& e) {
        impl->join();
        return err(std::string("dht: cannot start OpenDHT: ") + e.what());
    }
    // OpenDHT only logs a family that fails to bind and carries on without it.
    if (!cfg.bind4.empty() && impl->port4 == 0) {
        impl->join();
        return err("dht: cannot bind UDP " + cfg.bind4 + " port " + std::to_string(cfg.port));
    }
    if (!cfg.bind6.empty() && impl->port6 == 0) {
        impl->join();
        return err("dht: cannot bind UDP [" + cfg.bind6 + "] port " + std::to_string(cfg.port) +
                   " (OpenDHT 2.4.12 cannot cancel a listen on an IPv4-only node; set bind6 to \"\" to run without IPv6 and without listens)");
    }
    try {
        for (const auto& b : boots) impl->runner->bootstrap(b.host, b.port);
    } catch (const std::exception& e) {
        impl->join();
        return err(std::string("dht: bootstrap failed: ") + e.what());
    }
    return std::unique_ptr<Node>(new Node(std::move(impl)));
}

std::uint16_t Node::port() const { return impl_->port4 ? impl_->port4 : impl_->port6; }

std::uint16_t Node::port6() const { return impl_->port6; }

std::string Node::id_hex() const { return impl_->id_hex; }

std::size_t Node::good_nodes() const {
    if (impl_->joined) return 0;
    return quietly([&] {
        return std::size_t{impl_->runner->getNodesStats(AF_INET).good_nodes} +
               impl_->runner->getNodesStats(AF_INET6).good_nodes;
    });
}

std::vector<std::string> Node::public_addresses() const {
    std::vector<std::string> out;
    if (impl_->joined) return out;
    for (const auto& a : quietly([&] { return impl_->runner->getPublicAddress(); }))
        if (auto h = host_string(a.get()); !h.empty() && std::find(out.begin(), out.end(), h) == out.end())
            out.push_back(std::move(h));
    return out;
}

void Node::announce(const Key& key, std::uint64_t value_id, Bytes value, std::function<void(bool)> done,
                    ValueKind kind) {
    const auto type = static_cast<std::uint16_t>(kind);
    auto& im = *impl_;
    auto& sh = im.shared;
    auto fail = [&] {
        if (done) Shared::deliver(sh, [done] { done(false); });
    };
    if (im.stopping) return fail();
    if (value.empty() || value.size() > kMaxValueBytes) {
        sh->stats.announces_refused++;
        return fail();
    }
    if (im.cfg.verify_records) {
        od::Value probe(type, static_cast<const std::uint8_t*>(value.data()), value.size());
        if (!value_acceptable(type, to_hash(key), probe, im.cfg)) {
            sh->stats.announces_refused++;
            return fail();
        }
    }
    const auto hash = to_hash(key);
    if (type == kManifestValueType && im.cfg.verify_records && im.cfg.manifest_check) {
        // Our own copy is stored without the policies: record its version, so
        // this node, as a storing node, refuses older ones too.
        if (auto v = manifest_version(hash, od::Blob(value.begin(), value.end()), im.cfg.manifest_check))
            (void)sh->newest_manifests.admit(hash, *v);
    }
    auto& slot = im.slots[{key, value_id}];
    std::uint16_t seq = 1;
    if (slot.value) {
        if (slot.value->data == value) {
            seq = slot.value->seq;  // same content: re-put the same value (a no-op refresh)
        } else if (slot.value->seq == std::numeric_limits<std::uint16_t>::max()) {
            // seq would wrap, and storing nodes only take a higher seq: move to a new id.
            quietly([&] { im.runner->cancelPut(hash, slot.dht_id); });
            slot.generation++;
            slot.dht_id = 0;
        } else {
            seq = static_cast<std::uint16_t>(slot.value->seq + 1);
        }
    }
    if (!slot.dht_id) slot.dht_id = im.derive_id(value_id, slot.generation);
    if (!slot.value || slot.value->data != value) {
        slot.value = std::make_shared<od::Value>(type, static_cast<const std::uint8_t*>(value.data()), value.size(), slot.dht_id);
        slot.value->seq = seq;
    }
    sh->stats.puts++;

    const std::uint64_t op = sh->next_op++;
    auto fired = std::make_shared<std::atomic<bool>>(false);
    auto finish = [sh, op, done](bool ok) {
        if (!sh->pending.erase(op)) return;  // already completed (by shutdown)
        if (done) done(ok);
    };
    sh->pending[op] = [finish] { finish(false); };
    try {
        im.runner->put(
            hash, slot.value,
            od::DoneCallbackSimple([sh, finish, fired](bool ok) {
                if (fired->exchange(true)) return;
                Shared::deliver(sh, [finish, ok] { finish(ok); });
            }),
            od::time_point::max(), /*permanent=*/true);
    } catch (const std::exception&) {
        Shared::deliver(sh, [finish] { finish(false); });
    }
}

void Node::withdraw(const Key& key, std::uint64_t value_id) {
    auto& im = *impl_;
    auto it = im.slots.find({key, value_id});
    if (it == im.slots.end()) return;
    if (!im.joined) quietly([&] { im.runner->cancelPut(to_hash(key), it->second.dht_id); });
    im.slots.erase(it);
}

namespace {

// A get's values, on OpenDHT's thread: manifests by version (the newest kept),
// other values by id and seq, each bounded.
template <typename Check>
void take_values(GetOp& g, std::uint16_t type, bool manifests, const od::InfoHash& hash, const Check& check,
                 const std::vector<std::shared_ptr<od::Value>>& vals) {
    std::lock_guard lock(g.mu);
    for (const auto& v : vals) {
        if (!v || v->type != type) continue;
        if (manifests) {
            // By version, not by OpenDHT id and seq: anyone can re-put an
            // older manifest under the origin's id with a higher seq.
            auto version = manifest_version(hash, v->data, check);
            if (!version || !keep_newest(g.newest, g.cap, *version, v->data)) g.dropped++;
            continue;
        }
        if (v->data.empty() || v->data.size() > kMaxValueBytes) {
            g.dropped++;
            continue;
        }
        auto it = g.values.find(v->id);
        if (it == g.values.end()) {
            if (g.values.size() >= g.cap) {
                g.dropped++;
                continue;
            }
            g.values.emplace(v->id, std::make_pair(v->seq, to_bytes(v->data)));
        } else if (v->seq > it->second.first) {
            // Several storing nodes may hold different versions of one value.
            it->second = {v->seq, to_bytes(v->data)};
        }
    }
}

}  // namespace

void Node::get(const Key& key, std::function<void(std::vector<Bytes>)> done, ValueKind kind) {
    const auto type = static_cast<std::uint16_t>(kind);
    auto& im = *impl_;
    auto& sh = im.shared;
    if (im.stopping) {
        if (done) Shared::deliver(sh, [done] { done({}); });
        return;
    }
    sh->stats.gets++;
    const bool manifests = type == kManifestValueType;
    auto g = std::make_shared<GetOp>();
    g->cap = manifests ? im.cfg.max_manifests_per_get : im.cfg.max_values_per_get;
    g->done = std::move(done);
    const std::uint64_t op = sh->next_op++;
    // Runs on the loop thread, exactly once: from the DHT's done, or from shutdown.
    auto finish = [sh, op, g] {
        if (!sh->pending.erase(op)) return;
        std::vector<Bytes> out;
        std::uint64_t dropped = 0;
        {
            std::lock_guard lock(g->mu);
            out.reserve(g->values.size() + g->newest.size());
            for (auto& [id, v] : g->values) out.push_back(std::move(v.second));
            for (auto& [version, data] : g->newest) out.push_back(std::move(data));
            g->values.clear();
            g->newest.clear();
            dropped = g->dropped;
        }
        sh->stats.values_received += out.size();
        sh->stats.values_dropped += dropped;
        if (g->done) g->done(std::move(out));
    };
    sh->pending[op] = finish;
    auto on_values = [g, type, manifests, hash = to_hash(key), check = im.cfg.manifest_check](
                         const std::vector<std::shared_ptr<od::Value>>& vals) {
        take_values(*g, type, manifests, hash, check, vals);
        return true;
    };
    auto fired = std::make_shared<std::atomic<bool>>(false);
    try {
        // On OpenDHT's thread: a value that cannot be kept (bad_alloc) is lost,
        // the exception never unwinds into OpenDHT.
        auto guarded = [on_values, g](const std::vector<std::shared_ptr<od::Value>>& vals) {
            try {
                return on_values(vals);
            } catch (...) {
                std::lock_guard lock(g->mu);
                g->dropped += vals.size();
                return true;
            }
        };
        im.runner->get(to_hash(key), od::GetCallback(guarded),
                       od::DoneCallbackSimple([sh, finish, fired](bool) {
                           if (fired->exchange(true)) return;
                           Shared::deliver(sh, finish);
                       }),
                       od::Value::TypeFilter(type), od::Where().valueType(type));
    } catch (const std::exception&) {
        Shared::deliver(sh, finish);
    }
}

ListenToken Node::listen(const Key& key, ListenCallback cb, ValueKind kind) {
    const auto type = static_cast<std::uint16_t>(kind);
    auto& im = *impl_;
    auto& sh = im.shared;
    if (im.stopping || im.port6 == 0 || !cb) return 0;
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    const bool manifests = type == kManifestValueType;
    const std::size_t cap = manifests ? im.cfg.max_manifests_per_get : im.cfg.max_values_per_get;
    auto on_values = [sh, cancelled, cb, cap, type, manifests, hash = to_hash(key), check = im.cfg.manifest_check](
                         const std::vector<std::shared_ptr<od::Value>>& vals, bool expired) {
        if (*cancelled) return false;
        std::vector<Bytes> out;
        std::vector<std::pair<std::uint64_t, Bytes>> newest;
        for (const auto& v : vals) {
            if (!v || v->type != type || v->data.empty() || v->data.size() > kMaxValueBytes)
                continue;
            if (manifests) {
                if (auto version = manifest_version(hash, v->data, check))
                    keep_newest(newest, cap, *version, v->data);
            } else if (out.size() < cap) {
                out.push_back(to_bytes(v->data));
            }
        }
        for (auto& [version, data] : newest) out.push_back(std::move(data));
        if (!out.empty())
            Shared::deliver(sh, [sh, cancelled, cb, out = std::move(out), expired]() mutable {
                if (*cancelled) return;
                sh->stats.values_received += out.size();
                cb(std::move(out), expired);
            });
        return true;
    };
    try {
        auto guarded = [on_values](const std::vector<std::shared_ptr<od::Value>>& vals, bool expired) {
            try {
                return on_values(vals, expired);
            } catch (...) {  // on OpenDHT's thread: this batch is lost, the listen goes on
                return true;
            }
        };
        auto fut = im.runner->listen(to_hash(key), od::ValueCallback(guarded),
                                     od::Value::TypeFilter(type), od::Where().valueType(type));
        const ListenToken token = im.next_listen++;
        im.listens.emplace(token, Impl::Listen{to_hash(key), fut.share(), cancelled});
        sh->stats.listens++;
        return token;
    } catch (const std::exception&) {
        return 0;
    }
}

void Node::cancel_listen(ListenToken token) {
    auto& im = *impl_;
    auto it = im.listens.find(token);
    if (it == im.listens.end()) return;
    *it->second.cancelled = true;
    if (!im.joined) quietly([&] { im.runner->cancelListen(it->second.key, it->second.token); });
    im.listens.erase(it);
}

void Node::shutdown(std::function<void()> done) {
    auto& im = *impl_;
    auto sh = im.shared;
    if (im.stopping) {
        // Second call: done after the first shutdown's work, still through post.
        if (done) Shared::deliver(sh, done);
        return;
    }
    im.stopping = true;
    while (!im.listens.empty()) cancel_listen(im.listens.begin()->first);
    while (!im.slots.empty()) {
        auto k = im.slots.begin()->first;
        withdraw(k.first, k.second);
    }
    // OpenDHT's own shutdown() only sends nothing and waits for queued ops, which
    // never run while the node is still "connecting"; join() is what stops it.
    // Done on the loop thread, from a posted closure: never join from a DHT thread.
    Impl* raw = impl_.get();
    sh->post([sh, raw, done] {
        if (sh->closed) return;  // the Node was destroyed first; ~Node joined
        raw->join();
        raw->complete_pending();
        sh->closed = true;
        if (done) done();
    });
}

const Stats& Node::stats() const {
    impl_->shared->stats.stores_refused = impl_->shared->stores_refused.load();
    impl_->shared->stats.stores_older_refused = impl_->shared->stores_older_refused.load();
    impl_->shared->stats.stores_unenrolled = impl_->shared->stores_unenrolled.load();
    impl_->shared->stats.datagrams_too_large = impl_->shared->drops->too_large.load();
    impl_->shared->stats.datagrams_malformed = impl_->shared->drops->malformed.load();
    impl_->shared->stats.datagrams_rate_limited = impl_->shared->drops->rate_limited.load();
    auto copy = [](const DatagramTraffic::Way& from, Traffic& to) {
        to.packets = from.packets.load();
        to.bytes = from.bytes.load();
        for (std::size_t k = 0; k < kDatagramKinds; ++k) to.by_kind[k] = from.by_kind[k].load();
    };
    copy(impl_->shared->traffic->in, impl_->shared->stats.in);
    copy(impl_->shared->traffic->out, impl_->shared->stats.out);
    return impl_->shared->stats;
}

}  // namespace ps::dht
