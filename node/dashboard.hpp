// The live rollout dashboard (docs/daemon.md#dashboard): a web page served by
// the origin, and by each super-node for its own domain, with charts of a
// patch's rollout refreshed live.
//
// The data comes from the network, not from a database: each super-node
// counts its domain from the DHT's holder and membership records (the same
// Node::rollout as `patchswarm rollout`) and, when publishing, puts a small
// signed summary of it into the DHT (wire/summary.hpp); the origin reads the
// summaries of every domain (Node::domain_summaries). Every `interval_ms` a
// sample goes into a bounded ring buffer held in memory; the page reads the
// buffer as JSON (GET /api/state) and draws it with uPlot, which is embedded
// into the binary at build time (web/, node/dashboard_assets.hpp).
//
// Everything here runs on the loop thread; transfer::WebServer hands requests in.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "node/node.hpp"
#include "transfer/loop.hpp"
#include "transfer/web_server.hpp"

namespace ps::node {

// A fixed-capacity ring: push drops the oldest once full.
template <typename T>
class Ring {
public:
    explicit Ring(std::size_t capacity) : cap_(capacity ? capacity : 1) {}
    void push(T v) {
        if (items_.size() < cap_) {
            items_.push_back(std::move(v));
        } else {
            items_[head_] = std::move(v);
            head_ = (head_ + 1) % cap_;
        }
    }
    std::size_t size() const { return items_.size(); }
    // i = 0 is the oldest.
    const T& at(std::size_t i) const { return items_[(head_ + i) % items_.size()]; }
    const T* newest() const { return items_.empty() ? nullptr : &at(items_.size() - 1); }

private:
    std::size_t cap_;
    std::size_t head_ = 0;
    std::vector<T> items_;
};

using Counters = std::vector<std::pair<std::string, std::uint64_t>>;

// What a node counts as rejected, sorted by name (wire::DomainSummary::rejected).
// A new kind of rejection (a refused certificate, say) is one line here.
Counters rejected_counters(const NodeStatus& ns);

struct DashboardDomain {
    std::string domain;
    std::uint32_t online = 0, holders = 0, complete = 0, bans = 0;
    std::uint64_t bytes_imported = 0;
    Counters rejected;
    std::int64_t age_s = 0;  // how old the summary was when sampled
};

struct DashboardSample {
    std::int64_t unix_ms = 0;
    std::uint64_t served_bytes = 0;  // by this node, every patch, since start
    double served_rate = 0;          // bytes/s since the previous sample
    std::uint32_t bans = 0;          // this node's own
    Counters rejected;               // this node's own
    std::vector<DashboardDomain> domains;
};

class Dashboard {
public:
    struct Options {
        std::uint64_t interval_ms = 3'000;
        std::size_t samples = 1'200;  // one hour at 3 s
        bool publish = false;         // super-node: put its domain's summary into the DHT
        std::int64_t max_summary_age_s = 120;
    };
    // The patch to show: the newest this node serves or holds, if any.
    using Current = std::function<std::optional<VerifiedManifest>()>;

    Dashboard(transfer::Loop& loop, Node& node, Current current, Options opts);
    ~Dashboard();
    Dashboard(const Dashboard&) = delete;
    Dashboard& operator=(const Dashboard&) = delete;

    // Starts sampling, and serving at host:port when port >= 0 (0 = any free port).
    Status start(const std::string& host, int port);
    std::uint16_t port() const { return web_ ? web_->port() : 0; }
    // GET routes: / (the page), /dashboard.js, /uplot.js, /uplot.css, /api/state.
    void handle(const std::string& path, std::function<void(transfer::WebReply)> respond) const;
    std::string state_json() const;
    std::size_t sample_count() const { return ring_.size(); }

private:
    void tick();
    void record(DashboardSample s);
    void sample_super(const VerifiedManifest& vm, DashboardSample s);

    transfer::Loop& loop_;
    Node& node_;
    Current current_;
    Options opts_;
    Ring<DashboardSample> ring_;
    std::optional<VerifiedManifest> shown_;
    std::unique_ptr<transfer::Timer> timer_;
    std::unique_ptr<transfer::WebServer> web_;
    bool busy_ = false;  // a sample's DHT reads are still out
    std::uint64_t last_served_ = 0;
    std::int64_t last_ms_ = 0;
    // The last summary put and when: an unchanged one is put again only each minute.
    std::optional<wire::DomainSummary> last_put_;
    std::int64_t last_put_ms_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ps::node
