// Integration tests of whole nodes: real libuv TCP streams, real OpenDHT nodes,
// on loopback, in one process (one loop thread, DHT threads posting into it).
#include <doctest/doctest.h>

#include "node/node.hpp"
#include "support.hpp"

using namespace ps;
using namespace ps::test;

namespace {

transfer::Identity identity(Role role, const std::string& domain) {
    auto kp = crypto::generate_keypair();
    return {kp.sk, kp.pk, role, domain};
}

node::NodeOptions options(const std::string& data_dir, std::uint16_t bootstrap_port) {
    node::NodeOptions o;
    o.data_dir = data_dir;
    o.dht.max_peer_req_per_sec = -1;
    if (bootstrap_port) o.dht.bootstrap = {"127.0.0.1:" + std::to_string(bootstrap_port)};
    o.lookup_interval_ms = 300;
    return o;
}

// Stops every node and runs the loop until all of them have shut down.
void stop_all(transfer::Loop& loop, std::vector<node::Node*> nodes) {
    int pending = static_cast<int>(nodes.size());
    for (auto* n : nodes) n->shutdown([&] { --pending; });
    run_until(loop, [&] { return pending == 0; }, 10'000);
    CHECK(pending == 0);
}

}  // namespace

TEST_CASE("node: two nodes transfer a multi-segment file byte-identically over the DHT and an encrypted stream") {
    REQUIRE(crypto::init());
    TempDir dir("ps-node");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 5 * (1 << 20) + 12345, 1);  // 6 segments, the last one short
    auto vm = publish(patch, op);

    transfer::Loop loop;
    node::Node origin(loop, options(dir / "origin", 0), identity(Role::Origin, "core"));
    REQUIRE(origin.start());
    REQUIRE(origin.serve(vm, patch));
    node::Node peer(loop, options(dir / "peer", origin.dht_port()), identity(Role::Peer, "d1"));
    REQUIRE(peer.start());
    std::optional<Status> result;
    REQUIRE(peer.fetch(vm, dir / "out.bin", [&](Status s) { result = s; }));
    CHECK(run_until(loop, [&] { return result.has_value(); }, 30'000));
    REQUIRE(result);
    CHECK(result->ok());
    CHECK(slurp(dir / "out.bin") == slurp(patch));
    auto* st = peer.stats(vm.id);
    REQUIRE(st);
    CHECK(st->segments_verified == 6);
    CHECK(st->bytes_from[static_cast<int>(core::SourceClass::Origin)] == vm.manifest.total_size);
    CHECK(origin.stats(vm.id)->bytes_uploaded == vm.manifest.total_size);
    stop_all(loop, {&peer, &origin});
}

TEST_CASE("node: segments from a lying holder fail their hash, are never stored, and the liar is banned") {
    REQUIRE(crypto::init());
    TempDir dir("ps-node");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 4 * (1 << 20), 2);
    auto vm = publish(patch, op);

    transfer::Loop loop;
    // The liar is a same-domain peer, so the downloader asks it first.
    auto liar_opts = options(dir / "liar", 0);
    liar_opts.fault_corrupt_uploads = true;
    auto liar_id = identity(Role::Peer, "d1");
    auto liar_key = liar_id.key;
    node::Node liar(loop, liar_opts, std::move(liar_id));
    REQUIRE(liar.start());
    REQUIRE(liar.serve(vm, patch));
    node::Node victim(loop, options(dir / "victim", liar.dht_port()), identity(Role::Peer, "d1"));
    REQUIRE(victim.start());
    std::optional<Status> result;
    REQUIRE(victim.fetch(vm, dir / "out.bin", [&](Status s) { result = s; }));

    SUBCASE("with only the liar, nothing is stored") {
        auto* st = victim.stats(vm.id);
        CHECK(run_until(loop, [&] { return st->segments_rejected > 0; }, 20'000));
        run_until(loop, [] { return false; }, 500);
        CHECK_FALSE(result.has_value());
        CHECK(st->segments_verified == 0);
        CHECK(st->banned.count(to_hex(liar_key)) == 1);
        // The have file on disk marks nothing, and the data file holds no segment.
        auto have = slurp(dir / ("victim/" + to_hex(vm.id) + "/have"));
        CHECK(have == std::string(1, '\0'));
        stop_all(loop, {&victim, &liar});
    }
    SUBCASE("with an honest origin too, the download completes byte-identically") {
        node::Node origin(loop, options(dir / "origin", liar.dht_port()), identity(Role::Origin, "core"));
        REQUIRE(origin.start());
        REQUIRE(origin.serve(vm, patch));
        CHECK(run_until(loop, [&] { return result.has_value(); }, 30'000));
        REQUIRE(result);
        CHECK(result->ok());
        CHECK(slurp(dir / "out.bin") == slurp(patch));
        auto* st = victim.stats(vm.id);
        CHECK(st->segments_rejected >= 1);
        CHECK(st->banned.count(to_hex(liar_key)) == 1);
        CHECK(st->bytes_downloaded == vm.manifest.total_size);
        stop_all(loop, {&victim, &liar, &origin});
    }
}
