// Joining the DHT: pinging the bootstrap entries again (the node drives its
// own back-off), and nodes found by other means (LAN discovery).
#include "dht/dht_impl.hpp"

#include <algorithm>

namespace ps::dht {

namespace {

// One ping_bootstrap(): pings out, and the entries that answered.
struct PingOp {
    std::mutex mu;
    std::size_t left = 0;
    std::vector<std::string> answered;
};

// On the pinger thread: resolves each entry (DNS may block) and pings every
// address; the last answer or time-out hands `finish` to the loop.
void ping_all(od::DhtRunner& runner, const std::vector<std::string>& entries, const std::shared_ptr<Shared>& sh,
              const std::shared_ptr<PingOp>& op, const std::function<void()>& finish) {
    std::vector<std::pair<std::string, IpAddr>> addrs;
    for (auto& e : entries)
        if (auto hp = parse_host_port(e))
            for (auto& a : resolve(*hp)) addrs.emplace_back(e, a);
    op->left = addrs.size();
    if (addrs.empty()) return Shared::deliver(sh, finish);
    for (auto& [entry, addr] : addrs) {
        auto answer = [sh, op, finish, entry = entry](bool ok) {
            bool last = false;
            {
                std::lock_guard lock(op->mu);
                if (ok && std::find(op->answered.begin(), op->answered.end(), entry) == op->answered.end())
                    op->answered.push_back(entry);
                last = --op->left == 0;
            }
            if (last) Shared::deliver(sh, finish);
        };
        try {
            runner.bootstrap(to_sockaddr(addr), od::DoneCallbackSimple(answer));
        } catch (const std::exception&) {
            answer(false);
        }
    }
}

}  // namespace

void Node::ping_bootstrap(std::function<void(std::vector<std::string>)> done) {
    auto& im = *impl_;
    auto sh = im.shared;
    auto ping = std::make_shared<PingOp>();
    const std::uint64_t op = sh->next_op++;
    auto finish = [sh, op, ping, done] {  // loop thread, once: from the last answer or from shutdown
        if (!sh->pending.erase(op)) return;
        std::vector<std::string> answered;
        {
            std::lock_guard lock(ping->mu);
            answered = ping->answered;
        }
        if (done) done(std::move(answered));
    };
    sh->pending[op] = finish;
    if (im.stopping || im.cfg.bootstrap.empty() || im.pinging) return Shared::deliver(sh, finish);
    if (im.pinger.joinable()) im.pinger.join();  // the previous one has handed its pings over
    im.pinging = true;
    im.pinger = std::thread([&im, sh, ping, finish] {
        ping_all(*im.runner, im.cfg.bootstrap, sh, ping, finish);
        im.pinging = false;
    });
}

const std::vector<std::string>& Node::bootstrap_entries() const { return impl_->cfg.bootstrap; }

// A DHT node found by other means (node/node_lan.cpp): pinged once; OpenDHT
// adds it to the routing table when it answers.
void Node::add_node(const std::string& ip, std::uint16_t port) {
    auto a = parse_ip(ip, port);
    if (!a || impl_->stopping) return;
    try {
        impl_->runner->bootstrap(to_sockaddr(*a), {});
    } catch (const std::exception&) {
        // nothing more to do: the next beacon tries again
    }
}

}  // namespace ps::dht
