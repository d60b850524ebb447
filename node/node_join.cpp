// Joining the DHT: the node pings its bootstrap nodes with exponential back-off
// and jitter until one answers, says so in the log at each attempt, and starts
// again whenever its routing table empties. OpenDHT retries on its own only at
// 10 s, 20 s, 40 s ... without bound, so a node started before its bootstrap
// node could wait minutes after that node came up; here it waits at most 60 s.
#include <cmath>

#include "node/log.hpp"
#include "node/node.hpp"

namespace ps::node {

const char* to_string(DhtJoin::State s) {
    switch (s) {
        case DhtJoin::State::Waiting: return "waiting";
        case DhtJoin::State::Connecting: return "connecting";
        case DhtJoin::State::Connected: return "connected";
    }
    return "unknown";
}

namespace {

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace

void Node::set_join_state(DhtJoin::State st) {
    if (join_.state == st) return;
    const auto t = loop_.now_ms();
    if (st == DhtJoin::State::Connected)
        log::info("dht_connected", {{"attempts", join_.attempts},
                                     {"secs", double(t - join_.since_ms) / 1000.0},
                                     {"nodes", dht_ ? dht_->good_nodes() : 0}});
    else if (join_.state == DhtJoin::State::Connected)
        log::warn("dht_disconnected", {{"msg", "no DHT node answers any more; bootstrapping again"}});
    join_.state = st;
    join_.since_ms = t;
    join_.attempts = 0;
    join_.next_retry_ms = 0;
    join_.unanswered.clear();
    join_backoff_.reset();
    if (join_timer_) join_timer_->stop();
}

// Once a second: notices joining through someone else (a node that bootstraps
// to this one, OpenDHT's own retries) and losing every routing-table entry.
void Node::watch_dht() {
    if (!dht_ || stopping_) return;
    const bool good = dht_->good_nodes() > 0;
    if (good) return set_join_state(DhtJoin::State::Connected);
    if (join_.state != DhtJoin::State::Connected) return;
    if (join_.bootstrap.empty()) return set_join_state(DhtJoin::State::Waiting);
    set_join_state(DhtJoin::State::Connecting);
    ping_bootstrap();
}

void Node::ping_bootstrap() {
    if (!dht_ || stopping_ || join_.pinging || join_.state == DhtJoin::State::Connected) return;
    join_.pinging = true;
    join_.attempts++;
    join_.next_retry_ms = 0;
    log::debug("bootstrap_ping", {{"attempt", join_.attempts}, {"bootstrap", joined(join_.bootstrap)}});
    dht_->ping_bootstrap([this](std::vector<std::string> answered) { on_bootstrap_answers(std::move(answered)); });
}

void Node::on_bootstrap_answers(std::vector<std::string> answered) {
    join_.pinging = false;
    if (stopping_ || join_.state == DhtJoin::State::Connected) return;
    if (!answered.empty() || dht_->good_nodes() > 0) return set_join_state(DhtJoin::State::Connected);
    join_.unanswered = join_.bootstrap;
    const auto delay = join_backoff_.next(join_rng_);
    join_.next_retry_ms = loop_.now_ms() + delay;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", double(delay) / 1000.0);
    log::warn("bootstrap_unanswered",
              {{"msg", "no answer from " + joined(join_.unanswered) + ", retrying in " + secs + " s"},
               {"attempt", join_.attempts}, {"retry_in_s", double(delay) / 1000.0}});
    join_timer_->start(delay, 0, [this] { ping_bootstrap(); });
}

}  // namespace ps::node
