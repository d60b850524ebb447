// How a node finds holders and is found: holder and membership records in the
// DHT, the gossip passive view, manifest announcements (gossip and the DHT
// name key), and the per-domain rollout counts read from those records.
#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "crypto/crypto.hpp"
#include "dht/keys.hpp"
#include "node/log.hpp"
#include "node/node.hpp"
#include "node/node_util.hpp"
#include "wire/record.hpp"

namespace ps::node {

using namespace node_util;

namespace {
// Holder-record progress puts (neither the first nor "every segment"), at most this often.
constexpr std::uint64_t kProgressPutMs = 30'000;
}  // namespace

// Announcements stored in the DHT under the patch name: read at start and now
// and then (a listen can miss), so a node that was offline catches up.
void Node::check_watched() {
    if (!dht_ || stopping_) return;
    last_watch_ms_ = loop_.now_ms();
    for (auto& name : opts_.watch)
        dht_->get(dht::manifest_key(name), [this](std::vector<Bytes> values) {
            for (auto& v : values) on_announce(nullptr, v);
        }, dht::ValueKind::Manifest);
}

// ---- gossip ----
// Membership: every node also announces a record under its domain's key for the
// all-zero manifest id (super-nodes and origins under the cross-domain key too),
// so that a node with nothing to fetch still finds peers to hear announcements
// from. From then on Peers messages keep a passive view without the DHT.

void Node::announce_member() {
    if (!dht_ || stopping_ || listen_port() < 1024 || !advertising()) return;
    wire::HolderRecord r = own_record();
    r.seq = ++member_seq_;
    Bytes value = wire::encode_record(r, self_.secret);
    dht_->announce(dht::holder_key(self_.domain, Hash32{}), member_value_id_, value);
    if (self_.role != Role::Peer) dht_->announce(dht::global_holder_key(Hash32{}), member_value_id_, value);
    last_member_ms_ = loop_.now_ms();
}

void Node::join_gossip() {
    if (!dht_ || stopping_) return;
    last_join_ms_ = loop_.now_ms();
    for (std::string domain : {self_.domain, std::string(dht::kGlobalDomain)}) {
        auto key = domain == dht::kGlobalDomain ? dht::global_holder_key(Hash32{}) : dht::holder_key(domain, Hash32{});
        dht_->get(key, [this, domain](std::vector<Bytes> values) {
            for (auto& rec : holders_in(values, domain, Hash32{}))
                remember(wire::Contact{rec.node_key, rec.host, rec.port, rec.role, rec.domain});
            feed_domain_supers();
            run_actions();
        });
    }
}

// Contacts from gossip and the DHT are claims: a contact becomes "proven" once
// a dial to it came up, and only proven ones are passed on (a forged contact
// is not spread) or keep their address when someone else claims another.
void Node::remember(const wire::Contact& c) {
    if (c.key == self_.key || c.port < 1024) return;
    if (auto it = contacts_.find(c.key); it != contacts_.end()) {
        if (!it->second.proven) it->second.c = c;
        return;
    }
    if (contacts_.size() >= opts_.known_contacts) {
        // Full: forget a random other one, so the view keeps turning over.
        auto victim = contacts_.begin();
        std::advance(victim, static_cast<long>(crypto::random_u64() % contacts_.size()));
        contacts_.erase(victim);
    }
    contacts_[c.key].c = c;
}

// A dial to a contact did not come up: back off, and after a few in a row
// forget it, so a forged contact costs its address a bounded number of dials.
void Node::contact_failed(const crypto::PublicKey& key) {
    auto it = contacts_.find(key);
    if (it == contacts_.end()) return;
    Known& k = it->second;
    if (++k.failures >= opts_.contact_dial_attempts) {
        log::debug("contact_forgotten", {{"key", key_prefix(key)}, {"address", k.c.host + ":" + std::to_string(k.c.port)}});
        contacts_.erase(it);
        return;
    }
    std::uint64_t wait = opts_.contact_retry_ms;
    for (int i = 1; i < k.failures; ++i) wait *= 3;
    k.retry_ms = loop_.now_ms() + wait;
}

wire::MsgPeers Node::peers_msg() const {
    wire::MsgPeers m;
    if (advertising()) m.contacts.push_back({self_.key, opts_.advertise_host, advertised_port(), self_.role, self_.domain});
    // Then the contacts we reached ourselves, as far as the message allows.
    for (auto& [key, k] : contacts_) {
        if (m.contacts.size() >= wire::kMaxContacts) break;
        if (k.proven) m.contacts.push_back(k.c);
    }
    return m;
}

void Node::on_peers(Peer& from, const std::vector<wire::Contact>& contacts) {
    // A node sends its view once, when the connection comes up; more Peers
    // messages on one connection would only be someone feeding us contacts.
    if (from.heard_peers) return;
    from.heard_peers = true;
    for (std::size_t i = 0; i < contacts.size(); ++i) {
        auto c = contacts[i];
        // The first entry is the sender itself: its key is proven by the handshake.
        if (i == 0 && c.key != from.conn->peer().key) continue;
        remember(c);
    }
    feed_domain_supers();
    run_actions();
}

// The engine dials the own domain's super-nodes it is told of when a device
// downloads, whether or not its holder lookups found them.
void Node::feed_domain_supers() {
    if (self_.role != Role::Peer || stopping_) return;
    std::vector<core::Holder> supers;
    for (auto& [key, k] : contacts_)
        if (k.c.role == Role::Super && k.c.domain == self_.domain && k.retry_ms <= loop_.now_ms())
            supers.push_back({key, k.c.role, k.c.domain, k.c.host, k.c.port});
    engine_.domain_supers(supers, now());
}

void Node::announce_manifest(const VerifiedManifest& vm) {
    if (!seen_manifests_.insert(vm.id).second) return;
    // The origin also stores it under the patch name in the DHT, when it fits
    // in one DHT value (manifests of up to about 1,900 segments).
    if (self_.role == Role::Origin && dht_ && vm.bytes.size() <= dht::kMaxValueBytes)
        dht_->announce(dht::manifest_key(vm.manifest.name), member_value_id_ ^ 0x6d616e6966657374ull, vm.bytes, {},
                       dht::ValueKind::Manifest);
    auto& cur = latest_[vm.manifest.name];
    if (cur.manifest.version <= vm.manifest.version) cur = vm;
    for (auto& [id, p] : peers_)
        if (p.conn->ready()) send_msg(p, wire::MsgAnnounce{vm.bytes});
}

void Node::on_announce(Peer* from, ByteView bytes) {
    Hash32 id = wire::manifest_id(bytes);
    if (seen_manifests_.count(id)) return;
    ++announces_received_;
    if (!opts_.trust) return;
    auto vm = verify_manifest_bytes(bytes, *opts_.trust, unix_now());
    if (!vm) {
        ++announces_rejected_;
        log::warn("announcement_rejected", {{"from", from ? from->conn->remote() : std::string("dht")}, {"reason", vm.error()}});
        return;
    }
    auto it = latest_.find(vm->manifest.name);
    if (it != latest_.end() && it->second.manifest.version > vm->manifest.version) {
        seen_manifests_.insert(id);  // older than what we know: not news, not forwarded
        return;
    }
    seen_manifests_.insert(id);
    latest_[vm->manifest.name] = *vm;
    for (auto& [cid, p] : peers_)
        if (&p != from && p.conn->ready()) send_msg(p, wire::MsgAnnounce{vm->bytes});
    log::info("announcement", {{"name", vm->manifest.name}, {"version", vm->manifest.version}, {"id", wire::short_hex(id)}});
    if (opts_.on_announce) opts_.on_announce(*vm);
}

void Node::find_manifest(const std::string& name, std::function<void(std::optional<VerifiedManifest>)> done) {
    auto answer = [this, name, done] {
        auto it = latest_.find(name);
        done(it == latest_.end() ? std::nullopt : std::optional<VerifiedManifest>(it->second));
    };
    if (!dht_ || stopping_ || !wire::valid_patch_name(name)) return answer();
    dht_->get(dht::manifest_key(name), [this, answer](std::vector<Bytes> values) {
        for (auto& v : values) on_announce(nullptr, v);
        answer();
    }, dht::ValueKind::Manifest);
}

void Node::rollout(const Hash32& id, std::vector<std::string> extra, std::function<void(Rollout)> done,
                   bool own_domain_only) {
    struct Gather {
        Rollout r;
        std::map<std::string, RolloutDomain> by_domain;
        int pending = 0;
        std::function<void(Rollout)> done;
    };
    auto g = std::make_shared<Gather>();
    g->r.id = id;
    g->done = std::move(done);
    constexpr std::size_t kMost = 4096;  // records one key may add to the counts
    auto cap = opts_.dht.max_values_per_get;
    auto finish = [g] {
        if (--g->pending > 0) return;
        for (auto& [d, rd] : g->by_domain) g->r.domains.push_back(rd);
        g->done(std::move(g->r));
    };
    auto count_domain = [this, g, id, cap, finish](const std::string& domain) {
        g->by_domain[domain].domain = domain;
        g->pending += 2;
        dht_->get(dht::holder_key(domain, Hash32{}), [this, g, domain, cap, finish](std::vector<Bytes> values) {
            if (values.size() >= cap) g->r.capped = true;
            g->by_domain[domain].online =
                static_cast<std::uint32_t>(holders_in(values, domain, Hash32{}, kMost).size());
            finish();
        });
        dht_->get(dht::holder_key(domain, id), [this, g, domain, id, cap, finish](std::vector<Bytes> values) {
            if (values.size() >= cap) g->r.capped = true;
            auto& rd = g->by_domain[domain];
            for (auto& rec : holders_in(values, domain, id, kMost)) {
                bool full = rec.segment_count > 0 && rec.segments_held == rec.segment_count;
                log::debug("rollout_record", {{"domain", domain}, {"key", key_prefix(rec.node_key)},
                                              {"held", rec.segments_held}, {"of", rec.segment_count},
                                              {"seq", rec.seq}, {"issued", rec.issued}});
                ++rd.holders;
                rd.complete += full;
                rd.segments_held += rec.segments_held;
                rd.segments_total += rec.segment_count;
                if (rec.role == Role::Super) {
                    ++rd.supers;
                    rd.supers_complete += full;
                }
            }
            finish();
        });
    };
    if (!dht_ || stopping_) {
        g->pending = 1;
        return finish();
    }
    g->pending = 1;
    if (own_domain_only) {
        count_domain(self_.domain);
        return finish();
    }
    // First the domains: every super-node and origin is in the cross-domain
    // membership key; then two gets per domain.
    dht_->get(dht::global_holder_key(Hash32{}), [this, g, extra, count_domain, finish](std::vector<Bytes> values) {
        std::set<std::string> domains(extra.begin(), extra.end());
        domains.insert(self_.domain);
        for (auto& rec : holders_in(values, dht::kGlobalDomain, Hash32{}, kMost))
            domains.insert(rec.domain);
        for (auto& d : domains)
            if (valid_domain(d) && !stopping_) count_domain(d);
        finish();
    });
}

void Node::put_summary(const wire::DomainSummary& s) {
    if (!dht_ || stopping_) return;
    wire::DomainSummary out = s;
    out.domain = self_.domain;
    out.seq = ++summary_seq_;
    // One value per node and patch: a new summary replaces the previous one.
    const std::uint64_t value_id = member_value_id_ ^ (std::uint64_t{s.manifest_id[0]} << 56 | s.manifest_id[1]);
    dht_->announce(dht::summary_key(s.manifest_id), value_id, wire::encode_summary(out, self_.secret), {},
                   dht::ValueKind::Summary);
}

void Node::domain_summaries(const Hash32& id, std::int64_t max_age_s,
                            std::function<void(std::vector<wire::DomainSummary>)> done) {
    if (!dht_ || stopping_) return done({});
    dht_->get(dht::global_holder_key(Hash32{}), [this, id, max_age_s, done](std::vector<Bytes> members) {
        if (stopping_) return done({});
        std::set<std::pair<std::string, crypto::PublicKey>> supers;
        for (auto& rec : holders_in(members, dht::kGlobalDomain, Hash32{}, 4096))
            if (rec.role == Role::Super) supers.insert({rec.domain, rec.node_key});
        dht_->get(dht::summary_key(id), [id, max_age_s, done, supers](std::vector<Bytes> values) {
            std::map<std::string, wire::DomainSummary> best;
            for (auto& v : values) {
                auto s = wire::decode_summary(v, unix_now(), max_age_s);
                if (!s || s->manifest_id != id || !supers.count({s->domain, s->node_key})) continue;
                auto it = best.find(s->domain);
                if (it == best.end() || s->issued > it->second.issued) best[s->domain] = std::move(*s);
            }
            std::vector<wire::DomainSummary> out;
            for (auto& [d, s] : best) out.push_back(std::move(s));
            done(std::move(out));
        }, dht::ValueKind::Summary);
    });
}

// ---- discovery ----

namespace {
constexpr std::size_t kFarDomainsKept = 256;
constexpr std::size_t kFarDomainsPerLookup = 2;
}  // namespace

void Node::lookup(const Hash32& id, bool far) {
    if (!dht_ || stopping_) return;
    std::vector<std::string> domains{self_.domain, std::string(dht::kGlobalDomain)};
    // Afar, besides the super-nodes and the origin: the devices of a few other
    // domains, chosen at random, so that a domain's import is not carried by
    // the other domains' super-node uplinks alone.
    for (std::size_t i = 0; far && i < kFarDomainsPerLookup && i < far_domains_.size(); ++i) {
        std::size_t j = i + join_rng_.below(static_cast<std::uint32_t>(far_domains_.size() - i));
        std::swap(far_domains_[i], far_domains_[j]);
        domains.push_back(far_domains_[i]);
    }
    for (auto& domain : domains) {
        dht_->get(domain == dht::kGlobalDomain ? dht::global_holder_key(id) : dht::holder_key(domain, id),
                  [this, id, domain](std::vector<Bytes> values) { on_holders(id, domain, std::move(values)); });
    }
}

void Node::on_holders(const Hash32& id, const std::string& domain, std::vector<Bytes> values) {
    if (stopping_ || !swarm(id)) return;
    auto recs = holders_in(values, domain, id);
    if (domain == dht::kGlobalDomain)
        for (auto& rec : recs)
            if (rec.role == Role::Super && rec.domain != self_.domain && far_domains_.size() < kFarDomainsKept &&
                std::find(far_domains_.begin(), far_domains_.end(), rec.domain) == far_domains_.end())
                far_domains_.push_back(rec.domain);
    log::debug("lookup", {{"domain", domain}, {"values", values.size()}, {"holders", recs.size()}});
    std::vector<core::Holder> holders;
    for (auto& rec : recs) holders.push_back({rec.node_key, rec.role, rec.domain, rec.host, rec.port});
    engine_.holders_found(id, holders, domain == self_.domain, now());
    run_actions();
}

// At most max_dials_per_address_per_minute dials to one host:port in any
// minute: however many keys claim an address, it is not hammered.
bool Node::dial_allowed(const std::string& address, bool count) {
    auto t = loop_.now_ms();
    auto& times = dials_[address];
    while (!times.empty() && t - times.front() >= 60'000) times.pop_front();
    if (opts_.max_dials_per_address_per_minute > 0 && times.size() >= opts_.max_dials_per_address_per_minute) return false;
    if (count) times.push_back(t);
    return true;
}

void Node::dial(const core::Holder& h) {
    if (!dial_allowed(h.host + ":" + std::to_string(h.port), true)) {
        log::debug("dial_refused", {{"address", h.host + ":" + std::to_string(h.port)}, {"reason", "dial rate per address"}});
        contact_failed(h.key);
        std::weak_ptr<bool> alive = alive_;
        loop_.post([this, alive, key = h.key] {  // the engine hears of it as of any failed dial
            if (auto a = alive.lock(); !a || !*a) return;
            engine_.dial_failed(key, now());
            run_actions();
        });
        return;
    }
    auto c = transfer::Connection::dial(loop_, h.host, h.port, self_, *this, h.key);
    c->set_max_queued(opts_.max_queued_per_peer);
    auto id = c->id();
    peers_[id].conn = std::move(c);
    peers_[id].dialed = h.key;
}

void Node::announce(Swarm& s, std::uint32_t held, std::uint32_t segments) {
    if (!dht_ || stopping_ || !advertising()) return;
    // Completion goes out as a new DHT value, not as an update of the partial
    // record: OpenDHT 2.4 can keep an updated value stale on storing nodes (an
    // acknowledgement of the previous put counts for the new content), and
    // completion is what rollout views and downloaders must see. Readers keep
    // the newest record per node, so the partial one, withdrawn here, does no
    // harm until it expires. Progress updates reuse the value and wait for the
    // previous put to be acknowledged instead.
    bool full = held == segments;
    bool fresh = full && s.announced && !s.announced_full;
    // Readers need "holds some" (lookups) and "holds all" (rollout's complete
    // count) at once; the count in between only feeds rollout's progress, so
    // it goes out at most every kProgressPutMs (each put costs a DHT search).
    if (s.announced && !fresh && !full && loop_.now_ms() - s.last_put_ms < kProgressPutMs) return;
    if (!fresh && s.puts_in_flight > 0 && loop_.now_ms() - s.put_started_ms < 30'000) {
        s.put_again = true;  // sent when the previous put is acknowledged (or after 30 s)
        return;
    }
    if (fresh) {
        dht_->withdraw(dht::holder_key(self_.domain, s.vm.id), s.value_id);
        if (self_.role != Role::Peer) dht_->withdraw(dht::global_holder_key(s.vm.id), s.value_id);
        s.value_id = crypto::random_u64();
        s.puts_in_flight = 0;
        s.put_again = false;
    }
    s.announced_full = full;
    wire::HolderRecord r = own_record();
    r.manifest_id = s.vm.id;
    r.segments_held = held;
    r.segment_count = segments;
    r.seq = ++s.seq;
    Bytes value = wire::encode_record(r, self_.secret);
    Hash32 id = s.vm.id;
    std::uint64_t gen = ++s.put_gen;
    auto acked = [this, id, vid = s.value_id, gen](bool) {
        Swarm* sw = swarm(id);
        // Only this put's acknowledgements count (not a late one of a put
        // given up on after 30 s, nor one of a removed and re-added patch).
        if (!sw || sw->value_id != vid || sw->put_gen != gen || --sw->puts_in_flight > 0) return;
        if (sw->put_again) {
            sw->put_again = false;
            if (auto* h = engine_.held(id)) announce(*sw, h->count(), h->size());
        }
    };
    s.puts_in_flight = self_.role != Role::Peer ? 2 : 1;
    s.put_started_ms = s.last_put_ms = loop_.now_ms();
    dht_->announce(dht::holder_key(self_.domain, s.vm.id), s.value_id, value, acked);
    if (self_.role != Role::Peer) dht_->announce(dht::global_holder_key(s.vm.id), s.value_id, value, acked);
    s.announced = true;
}

}  // namespace ps::node
