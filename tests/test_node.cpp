// Integration tests of whole nodes: real libuv TCP streams, real OpenDHT nodes,
// on loopback, in one process (one loop thread, DHT threads posting into it).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
        CHECK(st->banned.count(liar_key) == 1);
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
        CHECK(st->banned.count(liar_key) == 1);
        CHECK(st->bytes_downloaded == vm.manifest.total_size);
        stop_all(loop, {&victim, &liar, &origin});
    }
}

TEST_CASE("node: a peer that connects and never speaks is dropped after the handshake timeout") {
    REQUIRE(crypto::init());
    TempDir dir("ps-node");
    transfer::Loop loop;
    auto o = options(dir / "n", 0);
    o.handshake_timeout_ms = 300;
    node::Node n(loop, o, identity(Role::Peer, "d1"));
    REQUIRE(n.start());
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(n.listen_port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    // The node's hello arrives at once; then, after the timeout, its close (EOF).
    char buf[64];
    std::size_t got = 0;
    bool eof = false;
    auto t0 = loop.now_ms();
    run_until(loop, [&] {
        ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) got += static_cast<std::size_t>(r);
        eof = r == 0;
        return eof;
    }, 3000);
    CHECK(got == 40);
    CHECK(eof);
    CHECK(loop.now_ms() - t0 >= 250);
    ::close(fd);
    stop_all(loop, {&n});
}

TEST_CASE("node: twelve nodes swarm one patch, everyone ends byte-identical and peers serve each other") {
    REQUIRE(crypto::init());
    TempDir dir("ps-swarm");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 8 * (1 << 20) + 777, 3);
    auto vm = publish(patch, op);
    transfer::Loop loop;
    // The origin's uplink is the scarce resource, as in the field: 4 MiB/s.
    auto oo = options(dir / "origin", 0);
    oo.upload_rate = 4 << 20;
    node::Node origin(loop, oo, identity(Role::Origin, "core"));
    REQUIRE(origin.start());
    REQUIRE(origin.serve(vm, patch));
    std::vector<std::unique_ptr<node::Node>> peers;
    int done = 0, ok = 0;
    for (int i = 0; i < 11; ++i) {
        auto o = options(dir / ("p" + std::to_string(i)), origin.dht_port());
        o.uploads.slots = 4;
        peers.push_back(std::make_unique<node::Node>(loop, o, identity(Role::Peer, i % 2 ? "d1" : "d2")));
        REQUIRE(peers.back()->start());
        REQUIRE(peers.back()->fetch(vm, dir / ("out" + std::to_string(i)), [&](Status s) {
            ++done;
            ok += s.ok();
        }));
    }
    CHECK(run_until(loop, [&] { return done == 11; }, 60'000));
    CHECK(ok == 11);
    std::uint64_t peer_uploads = 0;
    for (int i = 0; i < 11; ++i) {
        CHECK(slurp(dir / ("out" + std::to_string(i))) == slurp(patch));
        peer_uploads += peers[i]->stats(vm.id)->bytes_uploaded;
    }
    MESSAGE("origin uploaded " << origin.stats(vm.id)->bytes_uploaded / double(vm.manifest.total_size)
                               << "x the patch; peers uploaded " << peer_uploads / double(vm.manifest.total_size) << "x");
    // Client-server would take the origin 11 copies (22 s at 4 MiB/s); the swarm
    // must have carried most of the load.
    CHECK(peer_uploads > 5 * vm.manifest.total_size);
    CHECK(origin.stats(vm.id)->bytes_uploaded < 6 * vm.manifest.total_size);
    std::vector<node::Node*> all{&origin};
    for (auto& p : peers) all.push_back(p.get());
    stop_all(loop, all);
}

TEST_CASE("node: a holder killed mid-transfer or one that stops answering costs at most one timeout") {
    REQUIRE(crypto::init());
    TempDir dir("ps-node");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 6 * (1 << 20), 4);
    auto vm = publish(patch, op);
    transfer::Loop loop;
    node::Node origin(loop, options(dir / "origin", 0), identity(Role::Origin, "core"));
    REQUIRE(origin.start());
    REQUIRE(origin.serve(vm, patch));
    // A same-domain holder the downloader prefers.
    auto ho = options(dir / "holder", origin.dht_port());
    SUBCASE("stops answering") { ho.fault_ignore_requests = true; }
    SUBCASE("killed") {}
    auto holder = std::make_unique<node::Node>(loop, ho, identity(Role::Peer, "d1"));
    REQUIRE(holder->start());
    REQUIRE(holder->serve(vm, patch));
    bool silent = ho.fault_ignore_requests;

    auto fo = options(dir / "fetcher", origin.dht_port());
    fo.download.request_timeout = 1'000;
    fo.download_rate = 4 << 20;  // slow enough to kill the holder mid-transfer
    node::Node fetcher(loop, fo, identity(Role::Peer, "d1"));
    REQUIRE(fetcher.start());
    std::optional<Status> result;
    REQUIRE(fetcher.fetch(vm, dir / "out.bin", [&](Status s) { result = s; }));
    auto* st = fetcher.stats(vm.id);
    if (!silent) {
        // Kill the holder (no goodbye, no DHT withdrawal) once it has sent something.
        REQUIRE(run_until(loop, [&] { return st->bytes_from[0] > 0; }, 20'000));
        holder.reset();
    }
    auto t0 = loop.now_ms();
    REQUIRE(run_until(loop, [&] { return result.has_value(); }, 30'000));
    CHECK(result->ok());
    CHECK(slurp(dir / "out.bin") == slurp(patch));
    // 6 MiB at 4 MiB/s is ~1.5 s; one 1 s timeout on top, and DHT slack.
    MESSAGE((silent ? "silent" : "killed") << " holder: completed " << (loop.now_ms() - t0) << " ms after the fault");
    CHECK(loop.now_ms() - t0 < 6'000);
    CHECK(st->bytes_from[static_cast<int>(core::SourceClass::Origin)] > 0);
    std::vector<node::Node*> all{&fetcher, &origin};
    if (holder) all.push_back(holder.get());
    stop_all(loop, all);
}

TEST_CASE("node: a download added while already connected to a holder gets the holder's bitfield") {
    REQUIRE(crypto::init());
    TempDir dir("ps-node");
    auto op = crypto::generate_keypair();
    std::string patch = dir / "patch.bin";
    write_random_file(patch, 3 << 20, 12);
    auto vm = publish(patch, op);
    transfer::Loop loop;
    auto oo = options(dir / "origin", 0);
    oo.trust = node::TrustStore::from_key(op.pk);
    node::Node origin(loop, oo, identity(Role::Origin, "core"));
    REQUIRE(origin.start());
    REQUIRE(origin.serve(vm, patch));
    auto po = options(dir / "peer", origin.dht_port());
    po.lookup_interval_ms = 60'000;  // only the first lookup: the existing connection must do
    node::Node peer(loop, po, identity(Role::Peer, "d1"));
    REQUIRE(peer.start());
    // Gossip connects the two before the peer takes part in the patch.
    REQUIRE(run_until(loop, [&] { return peer.connected_peers() == 1; }, 15'000));
    std::optional<Status> result;
    REQUIRE(peer.fetch(vm, dir / "out.bin", [&](Status s) { result = s; }));
    CHECK(run_until(loop, [&] { return result.has_value(); }, 15'000));
    CHECK(slurp(dir / "out.bin") == slurp(patch));
    stop_all(loop, {&peer, &origin});
}
