// The attacker node of tests/dht_attacker.hpp (no test cases here).
#include <opendht/dhtrunner.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <future>
#include <mutex>
#include <string>

#include "tests/dht_attacker.hpp"

namespace ps::test {

struct RawDhtNode::Impl {
    ::dht::DhtRunner runner;
    bool stopped = false;
};

namespace {
::dht::InfoHash hash_of(const dht::Key& k) { return ::dht::InfoHash(k.data(), k.size()); }
}  // namespace

RawDhtNode::RawDhtNode(std::uint16_t seed_port) : impl_(std::make_unique<Impl>()) {
    ::dht::DhtRunner::Config rc;
    rc.threaded = true;
    rc.dht_config.node_config.network = 0x50A7C4;
    rc.dht_config.node_config.max_peer_req_per_sec = -1;
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    rc.bind4 = ::dht::SockAddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
    rc.bind6 = ::dht::SockAddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
    impl_->runner.run(rc, ::dht::DhtRunner::Context{});
    impl_->runner.bootstrap("127.0.0.1", std::to_string(seed_port));
}

RawDhtNode::~RawDhtNode() { stop(); }

void RawDhtNode::stop() {
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->runner.join();
}

std::size_t RawDhtNode::good_nodes() const { return impl_->runner.getNodesStats(AF_INET).good_nodes; }

std::vector<RawDhtNode::Value> RawDhtNode::get(const dht::Key& key) {
    std::promise<void> done;
    std::mutex mu;
    std::vector<Value> out;
    impl_->runner.get(
        hash_of(key),
        [&](const std::vector<std::shared_ptr<::dht::Value>>& vs) {
            std::lock_guard lock(mu);
            for (auto& v : vs)
                if (v) out.push_back(Value{v->id, v->seq, v->type, Bytes(v->data.begin(), v->data.end())});
            return true;
        },
        [&](bool) { done.set_value(); });
    done.get_future().wait();
    std::lock_guard lock(mu);
    return out;
}

void RawDhtNode::put(const dht::Key& key, const Value& v) {
    auto val = std::make_shared<::dht::Value>(v.type, v.data.data(), v.data.size(), v.id);
    val->seq = v.seq;
    std::promise<void> done;
    impl_->runner.put(hash_of(key), val, [&](bool) { done.set_value(); });
    done.get_future().wait();
}

}  // namespace ps::test
