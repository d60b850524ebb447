// Gossip on real nodes (loopback, real OpenDHT): announcements reach every
// online node without DHT listens, including a node that comes back later, and
// forged announcements are neither believed nor forwarded.
#include <doctest/doctest.h>

#include "node/node.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

struct Member {
    std::unique_ptr<node::Node> node;
    std::vector<Hash32> heard;
};

node::NodeOptions gossip_options(const std::string& dir, std::uint16_t bootstrap, const crypto::PublicKey& op) {
    node::NodeOptions o;
    o.data_dir = dir;
    o.dht.max_peer_req_per_sec = -1;
    if (bootstrap) o.dht.bootstrap = {"127.0.0.1:" + std::to_string(bootstrap)};
    o.trust = node::TrustStore::from_key(op);
    return o;
}

std::unique_ptr<Member> member(transfer::Loop& loop, node::NodeOptions o, Role role, const std::string& domain) {
    auto m = std::make_unique<Member>();
    Member* raw = m.get();
    o.on_announce = [raw](const node::VerifiedManifest& vm) { raw->heard.push_back(vm.id); };
    auto kp = crypto::generate_keypair();
    m->node = std::make_unique<node::Node>(loop, o, transfer::Identity{kp.sk, kp.pk, role, domain});
    REQUIRE(m->node->start());
    return m;
}

void stop(transfer::Loop& loop, std::vector<node::Node*> nodes) {
    int pending = static_cast<int>(nodes.size());
    for (auto* n : nodes) n->shutdown([&] { --pending; });
    run_until(loop, [&] { return pending == 0; }, 10'000);
}

}  // namespace

TEST_CASE("gossip: an announcement reaches every online node, and a node that was offline when it returns") {
    REQUIRE(crypto::init());
    TempDir dir("ps-gossip");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 3 << 20, 9);
    auto vm = publish(patch, op, "ims-client", 7);

    transfer::Loop loop;
    auto seed = member(loop, gossip_options(dir / "seed", 0, op.pk), Role::Super, "d1");
    std::vector<std::unique_ptr<Member>> online;
    for (int i = 0; i < 5; ++i)
        online.push_back(member(loop, gossip_options(dir / ("n" + std::to_string(i)), seed->node->dht_port(), op.pk),
                                Role::Peer, i % 2 ? "d1" : "d2"));
    // Everyone finds a few peers through the membership records.
    CHECK(run_until(loop, [&] {
        for (auto& m : online)
            if (m->node->connected_peers() == 0) return false;
        return true;
    }, 20'000));

    auto t0 = loop.now_ms();
    REQUIRE(online[0]->node->serve(vm, patch));  // serving a manifest announces it
    CHECK(run_until(loop, [&] {
        if (seed->heard.empty()) return false;
        for (std::size_t i = 1; i < online.size(); ++i)
            if (online[i]->heard.empty()) return false;
        return true;
    }, 10'000));
    MESSAGE("announcement reached every online node in " << loop.now_ms() - t0 << " ms");
    for (std::size_t i = 1; i < online.size(); ++i) {
        REQUIRE(online[i]->heard.size() == 1);  // duplicates suppressed
        CHECK(online[i]->heard[0] == vm.id);
    }

    // A node that was offline during the announcement hears it when it joins.
    auto late = member(loop, gossip_options(dir / "late", seed->node->dht_port(), op.pk), Role::Peer, "d2");
    CHECK(run_until(loop, [&] { return !late->heard.empty(); }, 20'000));
    REQUIRE(late->node->latest_manifests().count("ims-client"));
    CHECK(late->node->latest_manifests().at("ims-client").manifest.version == 7);

    std::vector<node::Node*> all{seed->node.get(), late->node.get()};
    for (auto& m : online) all.push_back(m->node.get());
    stop(loop, all);
}

TEST_CASE("gossip: a forged manifest announcement is ignored and not forwarded") {
    REQUIRE(crypto::init());
    TempDir dir("ps-gossip");
    auto op = crypto::generate_keypair();
    auto rogue = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 2 << 20, 10);
    auto forged = publish(patch, rogue, "ims-client", 99);  // signed by a key nobody trusts

    transfer::Loop loop;
    // The attacker trusts its own key, so it spreads the forgery as if genuine.
    auto attacker = member(loop, gossip_options(dir / "attacker", 0, rogue.pk), Role::Peer, "d1");
    std::vector<std::unique_ptr<Member>> victims;
    for (int i = 0; i < 3; ++i)
        victims.push_back(member(loop, gossip_options(dir / ("v" + std::to_string(i)), attacker->node->dht_port(), op.pk),
                                 Role::Peer, "d1"));
    CHECK(run_until(loop, [&] {
        for (auto& v : victims)
            if (v->node->connected_peers() == 0) return false;
        return attacker->node->connected_peers() > 0;
    }, 20'000));
    attacker->node->announce_manifest(forged);
    std::uint64_t rejected = 0;
    run_until(loop, [&] {
        rejected = 0;
        for (auto& v : victims) rejected += v->node->status().announces_rejected;
        return rejected > 0;
    }, 10'000);
    run_until(loop, [] { return false; }, 500);  // room for any (wrong) forwarding
    CHECK(rejected >= 1);
    for (auto& v : victims) {
        CHECK(v->heard.empty());
        CHECK(v->node->latest_manifests().empty());
        // Nobody forwarded it: each victim saw it at most once, straight from the attacker.
        CHECK(v->node->status().announces_received <= 1);
    }
    std::vector<node::Node*> all{attacker->node.get()};
    for (auto& v : victims) all.push_back(v->node.get());
    stop(loop, all);
}

TEST_CASE("gossip: a node offline at release finds the manifest under the patch name in the DHT, without any peer") {
    REQUIRE(crypto::init());
    TempDir dir("ps-gossip");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 2 << 20, 11);
    auto vm = publish(patch, op, "ims-client", 3);

    transfer::Loop loop;
    auto origin = member(loop, gossip_options(dir / "origin", 0, op.pk), Role::Origin, "core");
    REQUIRE(origin->node->serve(vm, patch));  // the origin stores it under manifest_key("ims-client")
    run_until(loop, [] { return false; }, 500);

    // Comes online later, follows the name, and keeps no gossip connections:
    // only the DHT can tell it.
    auto o = gossip_options(dir / "late", origin->node->dht_port(), op.pk);
    o.gossip_peers = 0;
    o.watch = {"ims-client"};
    auto late = member(loop, o, Role::Peer, "d1");
    CHECK(run_until(loop, [&] { return !late->heard.empty(); }, 15'000));
    REQUIRE(late->heard.size() == 1);
    CHECK(late->heard[0] == vm.id);
    CHECK(late->node->connected_peers() == 0);
    stop(loop, {late->node.get(), origin->node.get()});
}
