// bench_gossip: how long a manifest announcement takes to reach every online
// node, through gossip alone (no DHT listens). N nodes in D domains run in one
// process on loopback with real OpenDHT nodes; they join through membership
// records, then one device serves (and so announces) a new manifest.
//
//   bench_gossip [--nodes N] [--domains D] [--runs R]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "node/node.hpp"
#include "wire/manifest.hpp"

using namespace ps;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
    int nodes = 30, domains = 3, runs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--nodes")) nodes = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--domains")) domains = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    }
    if (!crypto::init()) return 1;
    auto dir = fs::temp_directory_path() / ("ps-bench-gossip-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto op = crypto::generate_keypair();
    std::printf("$ bench_gossip --nodes %d --domains %d --runs %d\n", nodes, domains, runs);
    for (int run = 0; run < runs; ++run) {
        // A small patch and its manifest, version = run so each is news.
        std::string patch = (dir / "patch.bin").string();
        std::ofstream(patch, std::ios::binary) << std::string(1 << 20, char('a' + run));
        wire::Manifest fields;
        fields.name = "ims-client";
        fields.version = static_cast<std::uint64_t>(run + 1);
        fields.created = std::time(nullptr);
        fields.expires = fields.created + 3600;
        fields.key_id = wire::key_id_of(op.pk);
        auto made = node::manifest_for_file(patch, fields);
        if (!made) return 1;
        wire::Manifest m = std::move(*made);
        wire::sign_manifest(m, op.sk);
        auto vm = node::verify_manifest_bytes(wire::encode_manifest(m), node::TrustStore::from_key(op.pk), m.created);

        transfer::Loop loop;
        std::vector<std::unique_ptr<node::Node>> all;
        std::vector<int> heard(nodes, 0);
        for (int i = 0; i < nodes; ++i) {
            node::NodeOptions o;
            o.data_dir = (dir / ("n" + std::to_string(run) + "-" + std::to_string(i))).string();
            o.dht.max_peer_req_per_sec = -1;
            if (i) o.dht.bootstrap = {"127.0.0.1:" + std::to_string(all[0]->dht_port())};
            o.trust = node::TrustStore::from_key(op.pk);
            o.on_announce = [&heard, i](const node::VerifiedManifest&) { heard[i] = 1; };
            auto kp = crypto::generate_keypair();
            Role role = i < domains ? Role::Super : Role::Peer;
            all.push_back(std::make_unique<node::Node>(
                loop, o, transfer::Identity{kp.sk, kp.pk, role, "d" + std::to_string(i % domains)}));
            if (!all.back()->start()) return 1;
        }
        bool joined = loop.run_until([&] {
            for (auto& n : all)
                if (n->connected_peers() == 0) return false;
            return true;
        }, 30'000, 5);
        auto t0 = std::chrono::steady_clock::now();
        if (!all[nodes - 1]->serve(*vm, patch)) return 1;  // a device announces
        heard[nodes - 1] = 1;
        bool reached = loop.run_until([&] {
            for (int h : heard)
                if (!h) return false;
            return true;
        }, 10'000, 5);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        int got = 0;
        for (int h : heard) got += h;
        std::printf("run %d: joined=%s, announcement reached %d/%d nodes in %.1f ms%s\n", run + 1, joined ? "yes" : "no",
                    got, nodes, ms, reached ? "" : " (TIMEOUT)");
        int pending = nodes;
        for (auto& n : all) n->shutdown([&] { --pending; });
        loop.run_until([&] { return pending == 0; }, 10'000, 5);
        all.clear();
    }
    fs::remove_all(dir);
    return 0;
}
