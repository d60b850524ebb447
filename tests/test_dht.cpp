// dht: key derivation, reader-side filtering, and real OpenDHT nodes on loopback
// (127.0.0.1 and ::1 only, private NetId, no per-IP rate limit, ephemeral ports).
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <filesystem>
#include <functional>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "crypto/crypto.hpp"
#include "dht/dht.hpp"
#include "dht/keys.hpp"
#include "node/enroll.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"
#include "wire/record.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/dht_attacker.hpp"

using namespace ps;
using namespace std::chrono_literals;
using wire::HolderRecord;

namespace {

// The test's event loop: OpenDHT threads post into it, the test thread drains it.
class TestLoop {
public:
    TestLoop() : owner_(std::this_thread::get_id()) {}

    dht::Post post() {
        return [this](std::function<void()> fn) {
            std::lock_guard lock(mu_);
            q_.push_back(std::move(fn));
            cv_.notify_all();
        };
    }

    // Runs posted functions on this thread until pred() holds or the deadline passes.
    template <class Pred>
    bool run_until(Pred pred, std::chrono::milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (pred()) return true;
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return false;
            std::deque<std::function<void()>> batch;
            {
                std::unique_lock lock(mu_);
                cv_.wait_until(lock, std::min(deadline, now + 20ms), [&] { return !q_.empty(); });
                batch.swap(q_);
            }
            for (auto& fn : batch) {
                in_loop_ = true;
                fn();
                in_loop_ = false;
                ++ran_;
            }
        }
    }
    void run_for(std::chrono::milliseconds d) { run_until([] { return false; }, d); }

    // True inside a function this loop is running, on the loop's thread.
    bool on_loop() const { return in_loop_ && std::this_thread::get_id() == owner_; }
    std::size_t ran() const { return ran_; }

private:
    std::thread::id owner_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> q_;
    bool in_loop_ = false;
    std::size_t ran_ = 0;
};

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
}

dht::Config test_config() {
    dht::Config c;
    c.bind4 = "127.0.0.1";
    c.bind6 = "::1";
    c.port = 0;
    c.network_id = 0x50A7C4;
    c.max_peer_req_per_sec = -1;
    return c;
}

// N real nodes: node 0 is the seed, the others bootstrap to it over both families.
struct Swarm {
    TestLoop& loop;
    std::vector<std::unique_ptr<dht::Node>> nodes;
    int wrong_thread = 0;  // callbacks that ran anywhere but inside loop.run_until

    explicit Swarm(TestLoop& l) : loop(l) {}
    ~Swarm() { stop(); }

    void start(int n, const std::function<void(int, dht::Config&)>& tweak = {}) {
        for (int i = 0; i < n; ++i) {
            auto c = test_config();
            if (i > 0) {
                const auto p = std::to_string(nodes[0]->port());
                const auto p6 = std::to_string(nodes[0]->port6());
                c.bootstrap = {"127.0.0.1:" + p, "[::1]:" + p6};
            }
            if (tweak) tweak(i, c);
            auto node = dht::Node::start(c, loop.post());
            REQUIRE_MESSAGE(node, node.error());
            nodes.push_back(std::move(node).value());
        }
        // Joiners know the seed at once and the seed answers for the others; full
        // mutual knowledge takes OpenDHT's 3-5 s node confirmation, not needed here.
        const bool connected = loop.run_until([&] {
            for (auto& nd : nodes)
                if (n > 1 && nd->good_nodes() == 0) return false;
            return true;
        }, 15s);
        REQUIRE_MESSAGE(connected, "swarm of " << n << " did not connect");
    }

    bool announce(int i, const dht::Key& key, std::uint64_t vid, const Bytes& v,
                  dht::ValueKind kind = dht::ValueKind::Holder) {
        std::optional<bool> result;
        nodes[i]->announce(key, vid, v, [&](bool ok) {
            if (!loop.on_loop()) ++wrong_thread;
            result = ok;
        }, kind);
        REQUIRE(loop.run_until([&] { return result.has_value(); }));
        return *result;
    }

    std::vector<Bytes> get(int i, const dht::Key& key, dht::ValueKind kind = dht::ValueKind::Holder) {
        std::optional<std::vector<Bytes>> out;
        nodes[i]->get(key, [&](std::vector<Bytes> v) {
            if (!loop.on_loop()) ++wrong_thread;
            out = std::move(v);
        }, kind);
        REQUIRE(loop.run_until([&] { return out.has_value(); }));
        return *out;
    }

    void stop() {
        std::size_t done = 0, want = 0;
        for (auto& n : nodes) {
            if (!n) continue;
            ++want;
            n->shutdown([&] {
                if (!loop.on_loop()) ++wrong_thread;
                ++done;
            });
        }
        loop.run_until([&] { return done == want; });
        CHECK(done == want);
        nodes.clear();
    }
};

struct Holder {
    crypto::KeyPair kp = crypto::generate_keypair();
    HolderRecord rec;
    Holder(std::string domain, const Hash32& id, std::uint16_t port, Role role = Role::Peer) {
        rec.role = role;
        rec.domain = std::move(domain);
        rec.manifest_id = id;
        rec.host = "127.0.0.1";
        rec.port = port;
        rec.node_key = kp.pk;
        rec.segments_held = 1;
        rec.segment_count = 4;
        rec.issued = now_unix();
        rec.seq = 1;
    }
    Bytes encode() const { return wire::encode_record(rec, kp.sk); }
};

Hash32 manifest(std::uint8_t b) {
    Hash32 h;
    h.fill(b);
    return h;
}

}  // namespace

// ---------------------------------------------------------------- keys, no network

TEST_CASE("dht: holder keys are domain-separated and follow the documented derivation") {
    REQUIRE(crypto::init());
    const auto id = manifest(0x11);
    // Recomputed from the definition in docs/dht.md.
    const std::uint8_t zero = 0;
    const Hash32 full = crypto::blake2b({as_bytes("patchswarm/holders/v1"), ByteView(&zero, 1),
                                         as_bytes("shop-1"), ByteView(&zero, 1), ByteView(id)});
    dht::Key want;
    std::copy_n(full.begin(), want.size(), want.begin());
    CHECK(dht::holder_key("shop-1", id) == want);

    CHECK(dht::holder_key("a", id) != dht::holder_key("b", id));
    CHECK(dht::holder_key("a", id) != dht::holder_key("a", manifest(0x12)));
    CHECK(dht::global_holder_key(id) == dht::holder_key("*", id));
    CHECK(dht::global_holder_key(id) != dht::holder_key("a", id));
    // No concatenation ambiguity between domain and manifest id.
    CHECK(dht::holder_key("ab", id) != dht::holder_key("a", id));
}

TEST_CASE("dht: record_matches checks domain, manifest and the global key's roles") {
    REQUIRE(crypto::init());
    Holder peer("a", manifest(1), 4000);
    CHECK(dht::record_matches(peer.rec, "a", manifest(1)));
    CHECK_FALSE(dht::record_matches(peer.rec, "b", manifest(1)));
    CHECK_FALSE(dht::record_matches(peer.rec, "a", manifest(2)));
    CHECK_FALSE(dht::record_matches(peer.rec, "*", manifest(1)));  // peers never serve cross-domain
    Holder super("a", manifest(1), 4000, Role::Super), origin("z", manifest(1), 4000, Role::Origin);
    CHECK(dht::record_matches(super.rec, "*", manifest(1)));
    CHECK(dht::record_matches(origin.rec, "*", manifest(1)));
    CHECK_FALSE(dht::record_matches(origin.rec, "*", manifest(2)));

    CHECK(dht::record_fits_key(peer.rec, dht::holder_key("a", manifest(1))));
    CHECK_FALSE(dht::record_fits_key(peer.rec, dht::global_holder_key(manifest(1))));
    CHECK(dht::record_fits_key(super.rec, dht::global_holder_key(manifest(1))));
    CHECK_FALSE(dht::record_fits_key(super.rec, dht::holder_key("b", manifest(1))));
}

TEST_CASE("dht: select_holders keeps one fresh verified record per node and caps the count") {
    REQUIRE(crypto::init());
    const auto id = manifest(3);
    Holder a("a", id, 4001), b("a", id, 4002), other_domain("b", id, 4003);
    Holder stale("a", id, 4004);
    stale.rec.issued = now_unix() - 4000;
    Bytes forged = a.encode();
    forged[forged.size() - 1] ^= 1;
    auto a_v1 = a.encode();
    a.rec.seq = 2;
    a.rec.port = 4011;
    auto a_v2 = a.encode();

    dht::DropCounts drops;
    auto kept = dht::select_holders({a_v1, b.encode(), other_domain.encode(), stale.encode(), forged, a_v2,
                                     Bytes{1, 2, 3}},
                                    "a", id, now_unix(), 3600, 64, &drops);
    REQUIRE(kept.size() == 2);
    for (auto& r : kept) {
        if (r.node_key == a.kp.pk) CHECK(r.port == 4011);  // the newer record of a
        else CHECK(r.node_key == b.kp.pk);
    }
    CHECK(drops.invalid == 2);
    CHECK(drops.stale == 1);
    CHECK(drops.misplaced == 1);
    CHECK(drops.superseded == 1);

    std::vector<Bytes> many;
    for (int i = 0; i < 10; ++i) many.push_back(Holder("a", id, static_cast<std::uint16_t>(5000 + i)).encode());
    dht::DropCounts d2;
    CHECK(dht::select_holders(many, "a", id, now_unix(), 3600, 4, &d2).size() == 4);
    CHECK(d2.over_limit == 6);
}

TEST_CASE("dht: start refuses bad addresses and bootstrap strings") {
    TestLoop loop;
    auto bad = [&](auto tweak) {
        auto c = test_config();
        tweak(c);
        auto n = dht::Node::start(c, loop.post());
        if (n) return std::string();
        return n.error();
    };
    CHECK(bad([](dht::Config& c) { c.bind4 = "localhost"; }).find("bind4") != std::string::npos);
    CHECK(bad([](dht::Config& c) { c.bind6 = "127.0.0.1"; }).find("bind6") != std::string::npos);
    CHECK(bad([](dht::Config& c) { c.bind4.clear(); c.bind6.clear(); }) != "");
    CHECK(bad([](dht::Config& c) { c.bootstrap = {"127.0.0.1"}; }).find("bootstrap") != std::string::npos);
    CHECK(bad([](dht::Config& c) { c.bootstrap = {"::1:4222"}; }).find("bootstrap") != std::string::npos);
    CHECK(bad([](dht::Config& c) { c.bootstrap = {"127.0.0.1:0"}; }).find("bootstrap") != std::string::npos);
    CHECK(bad([](dht::Config& c) { c.bootstrap = {"[::1]:99999"}; }).find("bootstrap") != std::string::npos);
    CHECK(dht::Node::start(test_config(), {}).error().find("post") != std::string::npos);

    // A port already taken by another node fails instead of silently going single-stack.
    auto first = dht::Node::start(test_config(), loop.post());
    REQUIRE_MESSAGE(first, first.error());
    auto c = test_config();
    c.port = (*first)->port();
    auto second = dht::Node::start(c, loop.post());
    CHECK_FALSE(second);
    bool done = false;
    (*first)->shutdown([&] { done = true; });
    CHECK(loop.run_until([&] { return done; }));
}

TEST_CASE("dht: classify_datagram reads the y and q fields of OpenDHT messages") {
    auto kind = [](std::initializer_list<std::uint8_t> b) {
        const Bytes v(b);
        return dht::classify_datagram(ByteView(v.data(), v.size()));
    };
    // {"q": "get", "y": "q"} and {"y": "q", "q": "listen"}
    CHECK(kind({0x82, 0xa1, 'q', 0xa3, 'g', 'e', 't', 0xa1, 'y', 0xa1, 'q'}) == dht::DatagramKind::Get);
    CHECK(kind({0x82, 0xa1, 'y', 0xa1, 'q', 0xa1, 'q', 0xa6, 'l', 'i', 's', 't', 'e', 'n'}) ==
          dht::DatagramKind::Listen);
    CHECK(kind({0x82, 0xa1, 'y', 0xa1, 'q', 0xa1, 'q', 0xa3, 'z', 'z', 'z'}) == dht::DatagramKind::OtherQuery);
    CHECK(kind({0x81, 0xa1, 'y', 0xa1, 'r'}) == dht::DatagramKind::Reply);
    CHECK(kind({0x81, 0xa1, 'y', 0xa1, 'e'}) == dht::DatagramKind::Error);
    CHECK(kind({0x81, 0xa1, 'y', 0xa1, 'v'}) == dht::DatagramKind::ValuePart);
    CHECK(kind({0x81, 0xa1, 'y'}) == dht::DatagramKind::Other);  // truncated
    CHECK(kind({0x81, 0xa1, 'y', 0xa1, 'q', 0xa1, 'q', 0xa5, 'p'}) == dht::DatagramKind::OtherQuery);  // short name
    CHECK(std::string(dht::kind_name(static_cast<std::size_t>(dht::DatagramKind::Put))) == "put");
}

// ------------------------------------------------------------ real nodes on loopback

TEST_CASE("dht: the socket counts the datagrams and bytes each node sends and receives, by kind") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(3);
    const auto before1 = swarm.nodes[1]->stats();
    const auto before2 = swarm.nodes[2]->stats();
    CHECK(before1.out.packets >= 1);  // bootstrapping already talked
    CHECK(before1.in.packets >= 1);
    const auto id = manifest(0x31);
    const auto key = dht::holder_key("shop-1", id);
    Holder h("shop-1", id, 4100);
    CHECK(swarm.announce(2, key, 1, h.encode()));
    CHECK(swarm.get(1, key).size() == 1);
    const auto& s1 = swarm.nodes[1]->stats();
    const auto& s2 = swarm.nodes[2]->stats();
    auto at = [](const dht::Traffic& t, dht::DatagramKind k) { return t.by_kind[static_cast<std::size_t>(k)]; };
    CHECK(at(s2.out, dht::DatagramKind::Put) > at(before2.out, dht::DatagramKind::Put));
    CHECK(at(s1.out, dht::DatagramKind::Get) > at(before1.out, dht::DatagramKind::Get));
    CHECK(at(s1.in, dht::DatagramKind::Reply) > at(before1.in, dht::DatagramKind::Reply));
    CHECK(s1.in.bytes > before1.in.bytes);
    CHECK(s1.out.bytes > before1.out.bytes);
    // Every datagram has a kind, and carries at least a msgpack header.
    for (const auto* t : {&s1.in, &s1.out, &s2.in, &s2.out}) {
        std::uint64_t sum = 0;
        for (auto n : t->by_kind) sum += n;
        CHECK(sum == t->packets);
        CHECK(t->bytes >= 10 * t->packets);
        CHECK(at(*t, dht::DatagramKind::Other) == 0);
    }
    swarm.stop();
}

TEST_CASE("dht: announce on one node, get on another finds exactly that record") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(4);
    const auto id = manifest(0x21);
    const auto key = dht::holder_key("shop-1", id);
    Holder h("shop-1", id, 4100);
    const auto bytes = h.encode();

    CHECK(swarm.announce(3, key, 1, bytes));
    auto got = swarm.get(1, key);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == bytes);  // raw bytes through OpenDHT unchanged (not msgpack-wrapped, P9)
    auto rec = wire::decode_record(got[0], now_unix());
    REQUIRE_MESSAGE(rec, rec.error());
    CHECK(*rec == h.rec);
    CHECK(dht::select_holders(got, "shop-1", id, now_unix()).size() == 1);
    // Nothing leaks to an unrelated key.
    CHECK(swarm.get(2, dht::holder_key("shop-1", manifest(0x22))).empty());
    CHECK(swarm.nodes[1]->stats().gets >= 1);
    CHECK(swarm.nodes[1]->stats().values_received >= 1);
    CHECK(swarm.nodes[3]->stats().puts == 1);
    CHECK(swarm.nodes[1]->id_hex().size() == 40);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: re-announce with the same value_id replaces the record on other nodes") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(4);
    const auto id = manifest(0x31);
    const auto key = dht::holder_key("shop-1", id);
    Holder h("shop-1", id, 4200);
    CHECK(swarm.announce(2, key, 9, h.encode()));
    REQUIRE(swarm.get(0, key).size() == 1);

    h.rec.seq = 2;
    h.rec.segments_held = 4;
    h.rec.port = 4201;
    const auto v2 = h.encode();
    CHECK(swarm.announce(2, key, 9, v2));
    // Every node, the seed included, must converge on exactly the new record.
    for (int i : {0, 1, 3}) {
        std::vector<Bytes> got;
        const bool replaced = loop.run_until([&] {
            got = swarm.get(i, key);
            return got.size() == 1 && got[0] == v2;
        }, 5s);
        CHECK_MESSAGE(replaced, "node " << i << " sees " << got.size() << " value(s), not the new record");
    }
    // A second value_id from the same node is a second value, not a replacement.
    Holder h2("shop-1", id, 4300);
    CHECK(swarm.announce(2, key, 10, h2.encode()));
    CHECK(swarm.get(1, key).size() == 2);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: a DHT lookup by a node of another domain does not find the first domain's holders under the domain key") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(4);
    const auto id = manifest(0x41);  // the same patch, distributed in both domains
    Holder a1("a", id, 4400), a2("a", id, 4401);
    CHECK(swarm.announce(1, dht::holder_key("a", id), 1, a1.encode()));
    CHECK(swarm.announce(2, dht::holder_key("a", id), 1, a2.encode()));

    // Node 3 is in domain "b": its lookup of its own key finds none of them.
    const auto in_b = swarm.get(3, dht::holder_key("b", id));
    CHECK(in_b.empty());
    CHECK(dht::select_holders(in_b, "b", id, now_unix()).empty());
    // The records are there: the same node finds both under domain a's key.
    const auto in_a = swarm.get(3, dht::holder_key("a", id));
    CHECK(in_a.size() == 2);
    CHECK(dht::select_holders(in_a, "a", id, now_unix()).size() == 2);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: a record of domain a put under domain b's key is rejected by the reader") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    // Storing nodes that do not verify (an older or modified build): the reader must
    // not depend on them.
    swarm.start(4, [](int, dht::Config& c) { c.verify_records = false; });
    const auto id = manifest(0x51);
    const auto key_b = dht::holder_key("b", id);
    Holder attacker("a", id, 4500), honest("b", id, 4501);
    CHECK(swarm.announce(1, key_b, 1, attacker.encode()));
    CHECK(swarm.announce(2, key_b, 1, honest.encode()));

    const auto raw = swarm.get(3, key_b);
    REQUIRE(raw.size() == 2);  // the forged record did arrive
    dht::DropCounts drops;
    const auto kept = dht::select_holders(raw, "b", id, now_unix(), 3600, 64, &drops);
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].node_key == honest.kp.pk);
    CHECK(drops.misplaced == 1);
    // The attacker's record is itself valid: only the key check stops it.
    CHECK(wire::decode_record(attacker.encode(), now_unix()));
    CHECK_FALSE(dht::record_matches(attacker.rec, "b", id));
    swarm.stop();
}

TEST_CASE("dht: verifying nodes refuse to store forged or misplaced records") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    // Nodes 0-3 verify (the default); node 4 is an attacker that does not.
    swarm.start(5, [](int i, dht::Config& c) { c.verify_records = (i != 4); });
    const auto id = manifest(0x61);
    Holder a("a", id, 4600), c("c", id, 4601);
    Bytes forged = a.encode();
    forged[forged.size() - 2] ^= 1;
    CHECK(swarm.announce(4, dht::holder_key("b", id), 1, a.encode()));  // misplaced
    CHECK(swarm.announce(4, dht::holder_key("a", id), 2, forged));      // bad signature
    CHECK(swarm.announce(4, dht::holder_key("c", id), 3, c.encode()));  // valid: the control
    // An honest node refuses to publish either itself, at once.
    CHECK_FALSE(swarm.announce(1, dht::holder_key("b", id), 1, a.encode()));
    CHECK_FALSE(swarm.announce(1, dht::holder_key("a", id), 2, forged));
    CHECK(swarm.nodes[1]->stats().announces_refused == 2);

    // Take the attacker (and its own local copies) away; look at what others stored.
    bool down = false;
    swarm.nodes[4]->shutdown([&] { down = true; });
    REQUIRE(loop.run_until([&] { return down; }));
    swarm.nodes[4].reset();
    CHECK(swarm.get(0, dht::holder_key("b", id)).empty());
    CHECK(swarm.get(0, dht::holder_key("a", id)).empty());
    CHECK(swarm.get(0, dht::holder_key("c", id)).size() == 1);
    std::uint64_t refused = 0;
    for (int i = 0; i < 4; ++i) refused += swarm.nodes[i]->stats().stores_refused;
    CHECK(refused >= 2);
    swarm.stop();
}

TEST_CASE("dht: listen delivers new records on the loop thread and stops after cancel_listen") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(4);
    const auto id = manifest(0x71);
    const auto key = dht::holder_key("shop-2", id);
    std::vector<Bytes> heard;
    int calls = 0;
    auto token = swarm.nodes[2]->listen(key, [&](std::vector<Bytes> values, bool expired) {
        if (!loop.on_loop()) ++swarm.wrong_thread;
        CHECK_FALSE(expired);
        ++calls;
        for (auto& v : values) heard.push_back(std::move(v));
    });
    REQUIRE(token != 0);
    loop.run_for(200ms);  // let the listen reach the storing nodes
    Holder h1("shop-2", id, 4700);
    CHECK(swarm.announce(0, key, 1, h1.encode()));
    REQUIRE(loop.run_until([&] { return !heard.empty(); }, 5s));
    CHECK(heard.size() == 1);
    CHECK(heard[0] == h1.encode());

    swarm.nodes[2]->cancel_listen(token);
    const int before = calls;
    Holder h2("shop-2", id, 4701);
    CHECK(swarm.announce(1, key, 2, h2.encode()));
    loop.run_for(1500ms);
    CHECK(calls == before);
    CHECK(swarm.get(2, key).size() == 2);  // the value was there to be heard
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: withdraw and shutdown are clean: threads joined, every callback through post") {
    REQUIRE(crypto::init());
    const std::size_t threads_before = thread_count();
    {
        TestLoop loop;
        Swarm swarm(loop);
        swarm.start(4);
        CHECK(thread_count() >= threads_before + 8);  // 2 per DhtRunner: its DHT loop and UDP receive
        const auto id = manifest(0x81);
        const auto key = dht::holder_key("shop-3", id);
        Holder h("shop-3", id, 4800);
        CHECK(swarm.announce(1, key, 1, h.encode()));
        REQUIRE(swarm.get(1, key).size() == 1);
        swarm.nodes[1]->withdraw(key, 1);

        // Callbacks still in flight at shutdown are completed, exactly once, through post.
        int get_calls = 0, announce_calls = 0, shutdown_calls = 0;
        swarm.nodes[2]->get(key, [&](std::vector<Bytes>) {
            if (!loop.on_loop()) ++swarm.wrong_thread;
            ++get_calls;
        });
        Holder h2("shop-3", id, 4801);
        swarm.nodes[2]->announce(key, 7, h2.encode(), [&](bool) {
            if (!loop.on_loop()) ++swarm.wrong_thread;
            ++announce_calls;
        });
        auto token = swarm.nodes[2]->listen(key, [&](std::vector<Bytes>, bool) {
            if (!loop.on_loop()) ++swarm.wrong_thread;
        });
        CHECK(token != 0);
        swarm.nodes[2]->shutdown([&] {
            if (!loop.on_loop()) ++swarm.wrong_thread;
            ++shutdown_calls;
        });
        // Nothing ran synchronously inside those calls.
        CHECK(get_calls + announce_calls + shutdown_calls == 0);
        REQUIRE(loop.run_until([&] { return shutdown_calls == 1; }));
        CHECK(get_calls == 1);
        CHECK(announce_calls == 1);
        // After shutdown: no new work, callbacks still delivered through post.
        int late = 0;
        swarm.nodes[2]->get(key, [&](std::vector<Bytes> v) { late += v.empty() ? 1 : 100; });
        CHECK(swarm.nodes[2]->listen(key, [](std::vector<Bytes>, bool) {}) == 0);
        loop.run_for(100ms);
        CHECK(late == 0);  // after shutdown's done, nothing more is called
        swarm.nodes[2].reset();
        swarm.stop();
        CHECK(swarm.wrong_thread == 0);
        CHECK(get_calls == 1);
        CHECK(announce_calls == 1);
    }
    CHECK(thread_count() == threads_before);
}

TEST_CASE("dht: withdraw drops this node's copy and stops publishing it") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(1);  // alone: a get sees exactly this node's own store
    const auto id = manifest(0x85);
    const auto key = dht::holder_key("shop-4", id);
    Holder h1("shop-4", id, 4850), h2("shop-4", id, 4851);
    // A lone node reports done(false): no other node stored it. Its own copy is there.
    swarm.announce(0, key, 1, h1.encode());
    swarm.announce(0, key, 2, h2.encode());
    REQUIRE(swarm.get(0, key).size() == 2);
    swarm.nodes[0]->withdraw(key, 1);
    auto left = swarm.get(0, key);
    REQUIRE(left.size() == 1);
    CHECK(left[0] == h2.encode());
    swarm.nodes[0]->withdraw(key, 1);  // twice, and unknown ids: harmless
    swarm.nodes[0]->withdraw(key, 99);
    // Announcing again after a withdraw publishes again.
    swarm.announce(0, key, 1, h1.encode());
    CHECK(swarm.get(0, key).size() == 2);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: announce refuses empty, oversized and invalid values at once, through post") {
    REQUIRE(crypto::init());
    TestLoop loop;
    auto node = dht::Node::start(test_config(), loop.post());
    REQUIRE_MESSAGE(node, node.error());
    auto& n = **node;
    const auto id = manifest(0x91);
    const auto key = dht::holder_key("a", id);
    std::vector<bool> results;
    auto record = [&](bool ok) {
        CHECK(loop.on_loop());
        results.push_back(ok);
    };
    n.announce(key, 1, Bytes{}, record);
    n.announce(key, 2, Bytes(dht::kMaxValueBytes + 1, 0), record);
    n.announce(key, 3, Bytes{1, 2, 3}, record);                      // not a record
    n.announce(key, 4, Holder("b", id, 4900).encode(), record);      // not this key's record
    CHECK(results.empty());
    REQUIRE(loop.run_until([&] { return results.size() == 4; }));
    CHECK(results == std::vector<bool>{false, false, false, false});
    CHECK(n.stats().announces_refused == 4);
    CHECK(n.stats().puts == 0);
    bool done = false;
    n.shutdown([&] { done = true; });
    CHECK(loop.run_until([&] { return done; }));
}

// ---------------------------------------------------------------- manifests under hostile writers

namespace {

// A signed manifest of `name` at `version` (one small segment), valid for a day.
Bytes signed_manifest(const crypto::KeyPair& kp, const std::string& name, std::uint64_t version) {
    wire::Manifest m;
    m.name = name;
    m.version = version;
    m.label = "v" + std::to_string(version);
    m.created = now_unix() - 60;
    m.expires = now_unix() + 86400;
    m.total_size = 1000;
    m.segment_size = wire::kMinSegmentSize;
    m.segment_hashes = {crypto::blake2b(as_bytes("segment " + std::to_string(version)))};
    m.file_hash = wire::segment_root(m.total_size, m.segment_size, m.segment_hashes);
    m.key_id = wire::key_id_of(kp.pk);
    wire::sign_manifest(m, kp.sk);
    return wire::encode_manifest(m);
}

std::uint64_t version_of(const Bytes& b) {
    auto m = wire::decode_manifest(b);
    REQUIRE(m);
    return m->version;
}

}  // namespace

TEST_CASE("dht: an older signed manifest cannot replace the newest one, and readers keep the newest whatever the order") {
    REQUIRE(crypto::init());
    const auto op = crypto::generate_keypair();
    const auto check = node::manifest_version_check(node::TrustStore::from_key(op.pk));
    constexpr auto kManifest = dht::ValueKind::Manifest;
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(4, [&](int, dht::Config& c) { c.manifest_check = check; });
    const std::string name = "ims-client";
    const auto key = dht::manifest_key(name);
    const Bytes v5 = signed_manifest(op, name, 5), v7 = signed_manifest(op, name, 7);
    REQUIRE(swarm.announce(1, key, 77, v7, kManifest));

    // The attacker learns the origin's OpenDHT value id and seq, then re-puts
    // that id with an older, validly signed manifest and a higher seq (an edit),
    // and also puts the older one under a fresh id.
    test::RawDhtNode attacker(swarm.nodes[0]->port());
    REQUIRE(loop.run_until([&] { return attacker.good_nodes() > 0; }, 10s));
    std::optional<test::RawDhtNode::Value> origin;
    REQUIRE(loop.run_until([&] {
        for (auto& v : attacker.get(key))
            if (v.type == dht::kManifestValueType) origin = v;
        return origin.has_value();
    }, 10s));
    attacker.put(key, {origin->id, static_cast<std::uint16_t>(origin->seq + 1), dht::kManifestValueType, v5});
    attacker.put(key, {origin->id ^ 0x5555, 1, dht::kManifestValueType, v5});

    // While the attacker still serves its copies, a reader keeps both versions, newest first.
    auto got = swarm.get(2, key, kManifest);
    REQUIRE(!got.empty());
    CHECK(got[0] == v7);

    // Honest storing nodes refused to go back to version 5.
    attacker.stop();
    for (int i : {0, 2, 3}) {
        auto seen = swarm.get(i, key, kManifest);
        REQUIRE_MESSAGE(!seen.empty(), "node " << i << " lost the manifest");
        CHECK_MESSAGE(seen[0] == v7, "node " << i << " sees version " << version_of(seen[0]) << " first");
        for (auto& b : seen) CHECK_MESSAGE(version_of(b) == 7, "node " << i << " also holds version " << version_of(b));
    }
    std::uint64_t older = 0;
    for (auto& n : swarm.nodes) older += n->stats().stores_older_refused;
    CHECK(older >= 1);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: junk and older manifests under the name key do not push the newest one out of a reader's values") {
    REQUIRE(crypto::init());
    const auto op = crypto::generate_keypair();
    const auto forger = crypto::generate_keypair();
    const auto check = node::manifest_version_check(node::TrustStore::from_key(op.pk));
    constexpr auto kManifest = dht::ValueKind::Manifest;
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(3, [&](int i, dht::Config& c) {
        c.manifest_check = check;
        if (i == 2) c.max_manifests_per_get = 2;
    });
    const std::string name = "ims-client";
    const auto key = dht::manifest_key(name);
    test::RawDhtNode attacker(swarm.nodes[0]->port());
    REQUIRE(loop.run_until([&] { return attacker.good_nodes() > 0; }, 10s));
    // First, before the real one: 40 junk values, forged "newer" ones, older signed ones.
    for (std::uint64_t i = 0; i < 40; ++i) {
        Bytes junk;
        if (i % 3 == 0) junk = signed_manifest(forger, name, 1000 + i);  // untrusted signer, higher version
        else if (i % 3 == 1) junk = signed_manifest(op, name, 1 + i % 5);  // older, validly signed
        else junk = Bytes(100 + i, static_cast<std::uint8_t>(0xdd));     // not msgpack a manifest
        attacker.put(key, {1000 + i, 1, dht::kManifestValueType, junk});
    }
    const Bytes v7 = signed_manifest(op, name, 7);
    REQUIRE(swarm.announce(1, key, 77, v7, kManifest));
    auto got = swarm.get(2, key, kManifest);
    REQUIRE(!got.empty());
    CHECK(got.size() <= 2);
    CHECK(got[0] == v7);
    for (auto& b : got) CHECK(version_of(b) <= 7);
    CHECK(swarm.nodes[2]->stats().values_dropped >= 1);
    attacker.stop();
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

// ---------------------------------------------------------------- hostile datagrams

namespace {

// Peak virtual memory (VmPeak) or resident set (VmHWM) of this process, in KiB.
std::uint64_t proc_status_kib(const std::string& field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
    return 0;
}

// CPU time (user + system) this process has used so far, in seconds.
double process_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Sends each datagram to 127.0.0.1:port from one UDP socket.
void send_datagrams(std::uint16_t port, const std::vector<Bytes>& dgrams) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sndbuf = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    for (auto& d : dgrams)
        (void)::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    ::close(fd);
}

// n bytes of nested msgpack array32 headers, each claiming 2^32-1 elements.
Bytes nested_arrays(std::size_t n) {
    Bytes b;
    while (b.size() + 5 <= n) b.insert(b.end(), {0xdd, 0xff, 0xff, 0xff, 0xff});
    return b;
}

}  // namespace

TEST_CASE("dht: hostile datagrams (huge, deeply nested, floods) are dropped before OpenDHT decodes them") {
    REQUIRE(crypto::init());
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(3, [](int i, dht::Config& c) {
        if (i == 1) c.max_datagrams_per_sec = 500;
    });
    const auto peak_before = proc_status_kib("VmPeak");
    const auto rss_before = proc_status_kib("VmHWM");
    const auto port = swarm.nodes[1]->port();

    const double cpu_before = process_cpu_seconds();
    std::vector<Bytes> hostile;
    for (int i = 0; i < 100; ++i) hostile.push_back(nested_arrays(60 * 1024));  // the red team's datagram
    for (int i = 0; i < 200; ++i) hostile.push_back(nested_arrays(15 * 1024));  // fits the size cap, too deep
    Bytes map16_liar = {0xde, 0xff, 0xff};                                      // claims 65535 pairs, has none
    for (int i = 0; i < 200; ++i) hostile.push_back(map16_liar);
    send_datagrams(port, hostile);
    loop.run_for(300ms);
    const double cpu_hostile = process_cpu_seconds() - cpu_before;
    std::vector<Bytes> flood(5000, Bytes{0x80});  // well-formed, empty map: only the rate limit stops it
    send_datagrams(port, flood);
    loop.run_for(2500ms);  // the bucket refills; the honest nodes share 127.0.0.1

    const auto& st = swarm.nodes[1]->stats();
    INFO("too large " << st.datagrams_too_large << ", malformed " << st.datagrams_malformed << ", rate-limited "
                      << st.datagrams_rate_limited);
    CHECK(st.datagrams_too_large >= 1);
    CHECK(st.datagrams_malformed >= 1);
    CHECK(st.datagrams_rate_limited >= 1);
    // Unfiltered, OpenDHT 2.4.12 spends about 30 ms of CPU on each nested datagram.
    CHECK_MESSAGE(cpu_hostile < 1.0, "the hostile datagrams cost " << cpu_hostile << " s of CPU");
    const auto peak_after = proc_status_kib("VmPeak");
    const auto rss_after = proc_status_kib("VmHWM");
    CHECK_MESSAGE(peak_after - peak_before < 512 * 1024, "address space grew by " << (peak_after - peak_before) << " KiB");
    CHECK_MESSAGE(rss_after - rss_before < 64 * 1024, "RSS grew by " << (rss_after - rss_before) << " KiB");

    // The node still works: a record put through it is found from another node.
    const auto id = manifest(0x71);
    const auto key = dht::holder_key("shop-1", id);
    Holder h("shop-1", id, 4700);
    CHECK(swarm.announce(1, key, 1, h.encode()));
    std::vector<Bytes> got;
    CHECK(loop.run_until([&] {
        got = swarm.get(2, key);
        return got.size() == 1;
    }, 10s));
    got = swarm.get(1, key);
    CHECK(got.size() == 1);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: an exception in a check or a completion stays inside the adapter") {
    REQUIRE(crypto::init());
    const auto op = crypto::generate_keypair();
    const auto check = node::manifest_version_check(node::TrustStore::from_key(op.pk));
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(3, [&](int i, dht::Config& c) {
        if (i == 2)  // a check that runs out of memory (on OpenDHT's threads)
            c.manifest_check = [](ByteView) -> std::optional<std::uint64_t> { throw std::bad_alloc(); };
        else
            c.manifest_check = check;
    });
    const auto key = dht::manifest_key("ims-client");
    const Bytes v7 = signed_manifest(op, "ims-client", 7);
    REQUIRE(swarm.announce(0, key, 1, v7, dht::ValueKind::Manifest));
    CHECK(swarm.get(2, key, dht::ValueKind::Manifest).empty());  // every value dropped, nothing thrown
    // A completion that throws: the loop's callback never sees it.
    bool called = false;
    swarm.nodes[1]->get(key, [&](std::vector<Bytes>) {
        called = true;
        throw std::runtime_error("completion failed");
    }, dht::ValueKind::Manifest);
    CHECK_NOTHROW(loop.run_until([&] { return called; }));
    CHECK(called);
    CHECK(swarm.get(1, key, dht::ValueKind::Manifest).size() == 1);  // and the node goes on
    swarm.stop();
}

TEST_CASE("dht: ping_bootstrap reports which bootstrap entries answer, on the loop thread, and a late seed is joined") {
    TestLoop loop;
    // A seed that is not running yet: reserve its port, then let it go.
    auto seed_cfg = test_config();
    std::uint16_t port = 0;
    {
        auto probe = dht::Node::start(test_config(), loop.post());
        REQUIRE_MESSAGE(probe, probe.error());
        port = (*probe)->port();
        bool down = false;
        (*probe)->shutdown([&] { down = true; });
        REQUIRE(loop.run_until([&] { return down; }));
    }
    auto c = test_config();
    c.bootstrap = {"127.0.0.1:" + std::to_string(port), "localhost:" + std::to_string(port)};
    auto joiner = dht::Node::start(c, loop.post());
    REQUIRE_MESSAGE(joiner, joiner.error());
    CHECK((*joiner)->bootstrap_entries() == c.bootstrap);
    int wrong_thread = 0;
    std::optional<std::vector<std::string>> answered;
    auto ping = [&] {
        answered.reset();
        (*joiner)->ping_bootstrap([&](std::vector<std::string> a) {
            if (!loop.on_loop()) ++wrong_thread;
            answered = std::move(a);
        });
        REQUIRE(loop.run_until([&] { return answered.has_value(); }, 30s));
    };
    ping();
    CHECK(answered->empty());  // nobody there: every ping timed out
    CHECK((*joiner)->good_nodes() == 0);

    seed_cfg.port = port;
    auto seed = dht::Node::start(seed_cfg, loop.post());
    REQUIRE_MESSAGE(seed, seed.error());
    ping();
    CHECK(std::find(answered->begin(), answered->end(), "127.0.0.1:" + std::to_string(port)) != answered->end());
    CHECK(loop.run_until([&] { return (*joiner)->good_nodes() > 0; }, 10s));
    CHECK(wrong_thread == 0);

    // After shutdown a ping completes at once, with nothing.
    int done = 0;
    (*joiner)->shutdown([&] { ++done; });
    (*seed)->shutdown([&] { ++done; });
    answered.reset();
    (*joiner)->ping_bootstrap([&](std::vector<std::string> a) { answered = std::move(a); });
    REQUIRE(loop.run_until([&] { return done == 2 && answered.has_value(); }));
    CHECK(answered->empty());
}

TEST_CASE("dht: storing nodes keep only valid summaries of the key's patch, and only their signer replaces one") {
    REQUIRE(crypto::init());
    constexpr auto kSummary = dht::ValueKind::Summary;
    TestLoop loop;
    Swarm swarm(loop);
    swarm.start(4);
    const auto id = manifest(0x71), other = manifest(0x72);
    const auto key = dht::summary_key(id);
    const auto a = crypto::generate_keypair(), b = crypto::generate_keypair();
    auto summary = [&](const Hash32& patch, std::uint32_t online) {
        wire::DomainSummary s;
        s.domain = "east";
        s.manifest_id = patch;
        s.issued = now_unix();
        s.seq = 4;
        s.online = online;
        return s;
    };
    const Bytes honest = wire::encode_summary(summary(id, 3), a.sk);
    REQUIRE(swarm.announce(1, key, 77, honest, kSummary));
    // An honest node refuses at once to publish a summary under another patch's key.
    CHECK_FALSE(swarm.announce(1, key, 78, wire::encode_summary(summary(other, 3), a.sk), kSummary));

    test::RawDhtNode attacker(swarm.nodes[0]->port());
    REQUIRE(loop.run_until([&] { return attacker.good_nodes() > 0; }, 10s));
    std::optional<test::RawDhtNode::Value> mine;
    REQUIRE(loop.run_until([&] {
        for (auto& v : attacker.get(key))
            if (v.type == dht::kSummaryValueType) mine = v;
        return mine.has_value();
    }, 10s));
    auto takeover = summary(id, 99);
    takeover.seq = 9;
    Bytes forged = wire::encode_summary(summary(id, 98), b.sk);
    forged[forged.size() - 3] ^= 1;
    // Another signer edits the honest value; another patch's summary, a forged
    // one and a valid one of its own (the control) under fresh ids.
    attacker.put(key, {mine->id, static_cast<std::uint16_t>(mine->seq + 1), dht::kSummaryValueType,
                       wire::encode_summary(takeover, b.sk)});
    attacker.put(key, {mine->id ^ 1, 1, dht::kSummaryValueType, wire::encode_summary(summary(other, 97), b.sk)});
    attacker.put(key, {mine->id ^ 2, 1, dht::kSummaryValueType, forged});
    attacker.put(key, {mine->id ^ 3, 1, dht::kSummaryValueType, wire::encode_summary(summary(id, 1), b.sk)});
    attacker.stop();

    for (int i : {0, 2, 3}) {
        std::set<std::uint32_t> online;
        for (auto& v : swarm.get(i, key, kSummary))
            if (auto s = wire::decode_summary(v, now_unix())) online.insert(s->online);
        CHECK_MESSAGE(online.count(3), "node " << i << " lost the honest summary");
        CHECK_MESSAGE(online.count(1), "node " << i << " did not store the attacker's valid summary (the control)");
        CHECK_MESSAGE(!online.count(99), "node " << i << " let another signer replace it");
        CHECK_MESSAGE(!online.count(97), "node " << i << " stored another patch's summary");
    }
    std::uint64_t refused = 0;
    for (auto& n : swarm.nodes) refused += n->stats().stores_refused;
    CHECK(refused >= 2);
    swarm.stop();
    CHECK(swarm.wrong_thread == 0);
}

TEST_CASE("dht: with an enrollment check, storing nodes refuse and readers drop holder records without a valid certificate") {
    REQUIRE(crypto::init());
    auto op = crypto::generate_keypair(), stranger = crypto::generate_keypair();
    auto trust = node::TrustStore::from_key(op.pk);
    trust.set_require_enrollment(true);
    TestLoop loop;
    Swarm swarm(loop);
    // Nodes 0-3 check certificates under the operator's trust; node 4 is an
    // attacker that stores and announces anything.
    swarm.start(5, [&](int i, dht::Config& c) {
        if (i != 4) c.record_check = node::record_cert_check(trust);
        else c.verify_records = false;
    });
    const auto id = manifest(0x7e);
    const auto key = dht::holder_key("a", id);
    auto with_cert = [&](Holder& h, const crypto::KeyPair& signer, std::int64_t expires) {
        wire::NodeCert c;
        c.node_key = h.kp.pk;
        c.role = h.rec.role;
        c.domain = h.rec.domain;
        c.issued = now_unix() - 7200;
        c.expires = expires;
        h.rec.cert = wire::encode_cert(c, signer.sk);
        h.rec.format = wire::kRecordFormatCert;
    };
    Holder enrolled("a", id, 4800), bare("a", id, 4801), forged("a", id, 4802), expired("a", id, 4803);
    with_cert(enrolled, op, now_unix() + 3600);
    with_cert(forged, stranger, now_unix() + 3600);
    with_cert(expired, op, now_unix() - 60);
    CHECK(swarm.announce(4, key, 1, enrolled.encode()));  // the control
    CHECK(swarm.announce(4, key, 2, bare.encode()));
    CHECK(swarm.announce(4, key, 3, forged.encode()));
    CHECK(swarm.announce(4, key, 4, expired.encode()));
    // An honest node refuses to publish the unenrolled ones itself, at once.
    CHECK_FALSE(swarm.announce(1, key, 5, bare.encode()));
    CHECK(swarm.nodes[1]->stats().announces_refused == 1);

    // Without the attacker's own copies, storing nodes hold the enrolled record only.
    bool down = false;
    swarm.nodes[4]->shutdown([&] { down = true; });
    REQUIRE(loop.run_until([&] { return down; }));
    swarm.nodes[4].reset();
    auto values = swarm.get(0, key);
    CHECK(values.size() == 1);
    std::uint64_t unenrolled = 0;
    for (int i = 0; i < 4; ++i) unenrolled += swarm.nodes[i]->stats().stores_unenrolled;
    CHECK(unenrolled >= 3);
    // A reader drops them too, whatever it is handed.
    dht::DropCounts drops;
    auto check = node::record_cert_check(trust);
    auto kept = dht::select_holders({enrolled.encode(), bare.encode(), forged.encode(), expired.encode()}, "a", id,
                                    now_unix(), 3600, 64, &drops, check);
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].node_key == enrolled.kp.pk);
    CHECK(drops.unenrolled == 3);
    swarm.stop();
}
