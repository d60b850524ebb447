// The daemon's interfaces: the control commands (node/control.hpp) and the
// Prometheus text of its counters.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "node/control.hpp"
#include "node/daemon.hpp"
#include "node/daemon_util.hpp"
#include "node/log.hpp"
#include "node/progress.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace daemon_util;

namespace {

// Seconds from loop time `now_ms` until `at_ms`, or null when nothing is planned.
json seconds_until(std::uint64_t at_ms, std::uint64_t now_ms) {
    if (!at_ms) return nullptr;
    return std::round(double(at_ms > now_ms ? at_ms - now_ms : 0) / 100.0) / 10.0;
}

// Datagram counts by kind, the kinds seen only.
json by_kind(const dht::Traffic& t) {
    json out = json::object();
    for (std::size_t k = 0; k < t.by_kind.size(); ++k)
        if (t.by_kind[k]) out[dht::kind_name(k)] = t.by_kind[k];
    return out;
}

json dht_join_json(const DhtJoin& j, std::uint64_t now_ms) {
    return {{"state", to_string(j.state)},
            {"since_seconds", std::round(double(now_ms - std::min(now_ms, j.since_ms)) / 100.0) / 10.0},
            {"attempts", j.attempts},
            {"next_retry_in_s", seconds_until(j.next_retry_ms, now_ms)},
            {"pinging", j.pinging},
            {"bootstrap", j.bootstrap},
            {"unanswered", j.unanswered}};
}

// A patch's state as `status` names it (the daemon's job may say failed).
std::string patch_state(const SwarmStatus& w) {
    return !w.downloading ? "serving" : w.complete ? "complete" : w.paused ? "paused" : "downloading";
}

// One patch in a status reply, as the node sees it (the daemon adds its job).
// now_unix and now_loop are the same moment on the wall clock and the loop's.
json swarm_json(const SwarmStatus& w, double now_unix, double now_loop) {
    std::string state = patch_state(w);
    json p{{"id", to_hex(w.id)},
           {"name", w.name},
           {"version", w.version},
           {"size", w.total_size},
           {"segments", w.segments},
           {"held", w.held},
           {"progress", w.segments ? double(w.held) / w.segments : 1.0},
           {"state", state},
           {"rate_down", std::round(w.rate_down)},
           {"rate_up", std::round(w.rate_up)},
           {"bytes_downloaded", w.stats.bytes_downloaded},
           {"bytes_uploaded", w.stats.bytes_uploaded},
           {"segments_verified", w.stats.segments_verified},
           {"segments_rejected", w.stats.segments_rejected},
           {"banned", w.stats.banned.size()}};
    json from = json::object();
    for (int c = 0; c < core::kSourceClasses; ++c) from[source_key(c)] = w.stats.bytes_from[c];
    p["bytes_from"] = from;
    json wasted = json::object();
    for (int c = 0; c < core::kSourceClasses; ++c) wasted[source_key(c)] = w.stats.wasted_from[c];
    p["bytes_wasted_from"] = wasted;
    // Wall-clock times (unix seconds), for comparing nodes: when this node
    // started on the patch and when it completed it.
    p["started_unix"] = now_unix - (now_loop - double(w.stats.started_ms) / 1000.0);
    p["completed_unix"] = w.stats.completed_ms ? json(now_unix - (now_loop - double(*w.stats.completed_ms) / 1000.0))
                                               : json(nullptr);
    p["seconds_to_complete"] =
        w.stats.completed_ms ? json(double(*w.stats.completed_ms - w.stats.started_ms) / 1000.0) : json(nullptr);
    p["held_bytes"] = w.held_bytes;
    auto eta = eta_seconds(w.held_bytes, w.total_size, w.rate_down);
    p["eta_seconds"] = state == "downloading" && eta ? json(std::round(*eta)) : json(nullptr);
    // Holder lookups (the engine's schedule): a download with no holder yet says when it looks again.
    const auto now_ms = static_cast<std::uint64_t>(now_loop * 1000.0);
    p["holders"] = w.lookup.holders;
    p["lookups"] = w.lookup.lookups;
    p["next_lookup_in_s"] = state == "downloading" ? seconds_until(w.lookup.next_lookup_ms, now_ms) : json(nullptr);
    return p;
}

}  // namespace

void Daemon::handle_control(std::string_view line, std::function<void(std::string)> respond) {
    if (stopping_) return respond(control::error_reply("the node is shutting down"));
    auto req = control::parse_request(line);
    if (!req) return respond(control::error_reply(req.error()));
    log::debug("control", {{"cmd", req->cmd}});
    auto arg = [&](const char* k) { return req->arg(k) ? *req->arg(k) : std::string(); };
    try {
        if (req->cmd == "status") return respond(cmd_status(req->arg("patch")));
        if (req->cmd == "list") return respond(cmd_list());
        if (req->cmd == "add") {
            if (req->arg("manifest") && req->arg("name"))
                return respond(control::error_reply("add takes a manifest or a name, not both"));
            if (req->arg("name")) return cmd_add_by_name(arg("name"), arg("out"), respond);
            if (!req->arg("manifest")) return respond(control::error_reply("add needs a manifest or a name"));
            return respond(cmd_add(arg("manifest"), arg("out")));
        }
        if (req->cmd == "pause") return respond(cmd_pause_resume(arg("patch"), true));
        if (req->cmd == "resume") return respond(cmd_pause_resume(arg("patch"), false));
        if (req->cmd == "remove") return respond(cmd_remove(arg("patch")));
        if (req->cmd == "publish") return respond(cmd_publish(arg("manifest"), arg("file")));
        if (req->cmd == "policy") return respond(cmd_policy(req->arg("battery"), req->arg("on_ac"), req->arg("metered")));
        if (req->cmd == "rollout") return cmd_rollout(arg("name"), req->arg("version"), respond);
        if (req->cmd == "statement") {
            auto bytes = from_hex(arg("statement"));
            if (!bytes) return respond(control::error_reply("statement: not hex"));
            if (auto st = node_->publish_statement(*bytes); !st) return respond(control::error_reply(st.error()));
            return respond(ok_reply());
        }
        if (req->cmd == "reload") {
            if (auto st = reload(); !st) return respond(control::error_reply(st.error()));
            return respond(ok_reply());
        }
    } catch (const std::exception& e) {  // nlohmann; never across the loop
        return respond(control::error_reply(std::string("internal error: ") + e.what()));
    }
    respond(control::error_reply("unknown command '" + req->cmd + "'"));
}

// Enrollment refusals by kind (peers at the handshake, records read from the
// DHT, records this node refused to store), operator statements, the trust
// store and freshness, into status's `node`.
static void add_trust_json(json& node, const NodeStatus& ns, std::int64_t freshness_window_s) {
    json enroll{{"required", ns.enrollment_required}, {"stores_refused", ns.dht.stores_unenrolled}};
    for (std::size_t k = 0; k < kCertRefusals; ++k) {
        const char* why = to_string(static_cast<CertRefusal>(k));
        enroll["peers_refused"][why] = ns.peers_refused.refused[k];
        enroll["records_refused"][why] = ns.records_refused.refused[k];
    }
    node["enrollment"] = enroll;
    node["statements"] = {{"received", ns.statements_received}, {"rejected", ns.statements_rejected},
                          {"known", ns.statements_known}};
    node["trust"] = {{"keys", ns.trusted_keys}, {"revoked_keys", ns.revoked_keys}};
    node["freshness"] = {{"stale", ns.stale}, {"issued_unix", ns.fresh_issued}, {"rejected", ns.freshness_rejected},
                         {"window_s", freshness_window_s}};
}

// How the node reaches and is reached: LAN discovery, trust, reachability and
// port mapping, and the warnings about them.
static void add_network_json(json& node, const NodeStatus& ns, const std::string& advertise_host,
                      std::int64_t freshness_window_s) {
    node["lan_discovery"] = {{"enabled", ns.lan_discovery}, {"sent", ns.lan.sent}, {"heard", ns.lan.heard},
                             {"refused", ns.lan.refused}, {"found", ns.lan.found}};
    add_trust_json(node, ns, freshness_window_s);
    node["advertise"] = advertise_host;
    node["reachability"] = {{"state", ns.reachability}, {"seen_as", ns.seen_as}, {"advertise", ns.advertise},
                            {"portmap", ns.portmap}, {"portmap_error", ns.portmap_error}};
    node["warnings"] = json::array();
    if (auto why = advertise_warning(advertise_host); !why.empty()) node["warnings"].push_back(why);
    if (ns.reachability == "unreachable")
        node["warnings"].push_back("unreachable: DHT nodes see this node at " + (ns.seen_as.empty() ? std::string("?") : ns.seen_as[0]) +
                                   ", not at the advertised " + advertise_host +
                                   " (a NAT?); it downloads but publishes no records; " +
                                   (ns.portmap_error.empty() ? std::string() : "port mapping failed (" + ns.portmap_error + "); ") +
                                   "set node.advertise to a forwarded address to serve");
}

std::string Daemon::cmd_status(const std::string* patch) {
    std::optional<Hash32> only;
    if (patch) {
        auto id = select(*patch);
        if (!id) return control::error_reply(id.error());
        only = *id;
    }
    NodeStatus ns = node_->status();
    json node{{"key", to_hex(ns.key)},
              {"role", std::string(to_string(ns.role))},
              {"domain", ns.domain},
              {"listen_port", ns.listen_port},
              {"dht_port", ns.dht_port},
              {"peers", ns.peers},
              {"dht_nodes", ns.dht_nodes},
              {"contacts", ns.contacts},
              {"upload_limit", ns.upload_rate_limit},
              {"download_limit", ns.download_rate_limit},
              {"quota", cfg_.quota}, {"auto_fetches", auto_fetches_}, {"auto_pending", auto_pending_.size()}, {"evictions", evictions_},
              {"reserved", reserved_bytes()},
              {"announces_received", ns.announces_received},
              {"announces_rejected", ns.announces_rejected},
              {"dht",
               {{"gets", ns.dht.gets},
                {"puts", ns.dht.puts},
                {"listens", ns.dht.listens},
                {"values_received", ns.dht.values_received},
                {"values_dropped", ns.dht.values_dropped},
                {"packets_in", ns.dht.in.packets},
                {"packets_out", ns.dht.out.packets},
                {"bytes_in", ns.dht.in.bytes},
                {"bytes_out", ns.dht.out.bytes},
                {"packets_in_by_kind", by_kind(ns.dht.in)},
                {"packets_out_by_kind", by_kind(ns.dht.out)}}}};
    node["dht_join"] = dht_join_json(ns.dht_join, ns.now_ms);
    add_network_json(node, ns, setup_.opts.advertise_host, setup_.opts.freshness_window_s);
    json patches = json::array();
    std::uint64_t uploaded = 0;
    double rate_up = 0, rate_down = 0;
    for (auto& w : ns.swarms) {
        uploaded += w.stats.bytes_uploaded;
        rate_up += w.rate_up;
        rate_down += w.rate_down;
        if (only && w.id != *only) continue;
        auto job = jobs_.find(w.id);
        json p = swarm_json(w, double(unix_now_ms()) / 1000.0, double(loop_.now_ms()) / 1000.0);
        if (job != jobs_.end()) {
            p["out"] = job->second.out;
            if (job->second.state == JobState::Failed) {
                p["state"] = "failed";
                p["error"] = job->second.error;
            }
            if (!job->second.hook.empty()) p["hook"] = job->second.hook;
        } else {
            p["out"] = w.out_path;
        }
        add_wave_fields(p, w.id);
        patches.push_back(std::move(p));
    }
    node["wave_waits"] = wave_waits_;
    node["policy"] = policy_json();
    json j{{"node", node},
           {"patches", patches},
           {"waiting", waiting_json()},
           {"uploads", {{"peers", ns.upload_peers}, {"bytes", uploaded}, {"rate", std::round(rate_up)}}},
           {"downloads", {{"rate", std::round(rate_down)}}}};
    return ok_reply(std::move(j));
}

std::string Daemon::summary() const {
    NodeStatus ns = node_->status();
    std::string s = std::string("dht ") + to_string(ns.dht_join.state);
    if (ns.dht_join.state == DhtJoin::State::Connecting && ns.dht_join.attempts)
        s += " (attempt " + std::to_string(ns.dht_join.attempts) + ")";
    s += "; " + std::to_string(ns.peers) + " peers";
    std::uint64_t held = 0, total = 0;
    int downloading = 0, complete = 0, serving = 0;
    for (auto& w : ns.swarms) {
        if (!w.downloading) ++serving;
        else if (w.complete) ++complete;
        else {
            ++downloading;
            held += w.held;
            total += w.segments;
        }
    }
    if (downloading)
        s += "; " + std::to_string(downloading) + " downloading (" + std::to_string(total ? 100 * held / total : 0) + "%)";
    if (complete) s += "; " + std::to_string(complete) + " complete";
    if (serving) s += "; serving " + std::to_string(serving);
    return s;
}

std::string Daemon::cmd_list() {
    json patches = json::array();
    for (auto& w : node_->status().swarms) {
        auto job = jobs_.find(w.id);
        std::string state = !w.downloading ? "serving" : w.complete ? "complete" : w.paused ? "paused" : "downloading";
        if (job != jobs_.end() && job->second.state == JobState::Failed) state = "failed";
        json p{{"id", to_hex(w.id)},
               {"name", w.name},
               {"version", w.version},
               {"state", state},
               {"progress", w.segments ? double(w.held) / w.segments : 1.0},
               {"out", job != jobs_.end() ? job->second.out : w.out_path}};
        add_wave_fields(p, w.id);
        patches.push_back(std::move(p));
    }
    for (auto& w : waiting_json()) patches.push_back(w);
    return ok_reply({{"patches", patches}});
}

std::string Daemon::cmd_add(const std::string& manifest, const std::string& out) {
    auto vm = load_verified_manifest(manifest, setup_.trust, unix_now());
    if (!vm) return control::error_reply(manifest + ": " + vm.error());
    return add_download(*vm, out.empty() ? default_out(*vm) : out, "added");
}

void Daemon::cmd_add_by_name(const std::string& name, const std::string& out, std::function<void(std::string)> respond) {
    find_named(name, [this, out, respond](Result<VerifiedManifest> vm) {
        if (!vm) return respond(control::error_reply(vm.error()));
        respond(add_download(*vm, out.empty() ? default_out(*vm) : out, "added"));
    });
}

void Daemon::find_named(const std::string& name, std::function<void(Result<VerifiedManifest>)> done) {
    if (!wire::valid_patch_name(name))
        return done(err("'" + name.substr(0, 80) + "' is not a patch name ([a-z0-9._-], at most 64)"));
    node_->find_manifest(name, [this, name, done](std::optional<VerifiedManifest> vm) {
        if (stopping_) return done(err("the node is shutting down"));
        if (!vm)
            return done(err("no manifest named '" + name +
                            "' is known: none was announced to this node, and none is in the DHT"));
        done(std::move(*vm));
    });
}

Result<Hash32> Daemon::add_manifest(const std::string& manifest, const std::string& out) {
    auto vm = load_verified_manifest(manifest, setup_.trust, unix_now());
    if (!vm) return err(manifest + ": " + vm.error());
    return add_verified(*vm, out);
}

void Daemon::add_by_name(const std::string& name, const std::string& out, std::function<void(Result<Hash32>)> done) {
    find_named(name, [this, out, done](Result<VerifiedManifest> vm) {
        if (!vm) return done(std::move(vm).take_error());
        done(add_verified(*vm, out));
    });
}

Result<Hash32> Daemon::add_verified(const VerifiedManifest& vm, const std::string& out) {
    if (stopping_) return err("the node is shutting down");
    if (auto st = add_job(vm, out.empty() ? default_out(vm) : out, "added"); !st) return std::move(st).take_error();
    return vm.id;
}

std::vector<Daemon::Progress> Daemon::progress() const {
    std::vector<Progress> out;
    for (auto& w : node_->status().swarms) {
        Progress p{w.id, w.name, patch_state(w), "", w.out_path, w.version, w.held_bytes, w.total_size};
        if (auto job = jobs_.find(w.id); job != jobs_.end()) {
            p.out = job->second.out;
            if (job->second.state == JobState::Failed) {
                p.state = "failed";
                p.error = job->second.error;
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

std::string Daemon::cmd_pause_resume(const std::string& patch, bool pause) {
    auto id = select(patch);
    if (!id) return control::error_reply(id.error());
    auto st = pause ? node_->pause(*id) : node_->resume(*id);
    if (!st) return control::error_reply(st.error());
    auto job = jobs_.find(*id);
    if (job != jobs_.end() && (job->second.state == JobState::Downloading || job->second.state == JobState::Paused)) {
        job->second.state = pause ? JobState::Paused : JobState::Downloading;
        (void)save_job(*id);
    }
    log::info(pause ? "paused" : "resumed", {{"id", to_hex(*id)}});
    return ok_reply({{"id", to_hex(*id)}});
}

std::string Daemon::cmd_remove(const std::string& patch) {
    auto id = select(patch);
    if (!id) return control::error_reply(id.error());
    if (auto st = drop_patch(*id); !st) return control::error_reply(st.error());
    log::info("removed", {{"id", to_hex(*id)}});
    return ok_reply({{"id", to_hex(*id)}});
}

void Daemon::cmd_rollout(const std::string& name, const std::string* version, std::function<void(std::string)> respond) {
    std::uint64_t want = 0;
    if (version) {
        if (version->empty() || version->size() > 18 || version->find_first_not_of("0123456789") != std::string::npos ||
            std::stoull(*version) == 0)
            return respond(control::error_reply("version '" + version->substr(0, 32) + "' is not a number >= 1"));
        want = std::stoull(*version);
    }
    auto run = [this, respond](const VerifiedManifest& vm) {
        node_->rollout(vm.id, {}, [vm, respond, waves = wave_json(vm)](Rollout r) {
            json domains = json::array();
            std::uint64_t online = 0, holders = 0, complete = 0;
            for (auto& d : r.domains) {
                online += d.online;
                holders += d.holders;
                complete += d.complete;
                domains.push_back({{"domain", d.domain},
                                   {"online", d.online},
                                   {"holders", d.holders},
                                   {"complete", d.complete},
                                   {"supers", d.supers},
                                   {"supers_complete", d.supers_complete},
                                   {"segments_held", d.segments_held},
                                   {"segments_total", d.segments_total}});
            }
            json j{{"id", to_hex(vm.id)},
                   {"name", vm.manifest.name},
                   {"version", vm.manifest.version},
                   {"domains", domains},
                   {"online", online},
                   {"holders", holders},
                   {"complete", complete},
                   {"capped", r.capped}};
            j.update(waves);
            respond(ok_reply(std::move(j)));
        });
    };
    // A manifest this node serves or downloads first (the version asked for, or
    // its newest), else the newest the network knows under the name.
    const VerifiedManifest* best = nullptr;
    for (auto& [id, vm] : manifests_)
        if (vm.manifest.name == name &&
            (want ? vm.manifest.version == want : !best || vm.manifest.version > best->manifest.version))
            best = &vm;
    if (best) return run(*best);
    node_->find_manifest(name, [this, name, want, respond, run](std::optional<VerifiedManifest> vm) {
        if (stopping_) return respond(control::error_reply("the node is shutting down"));
        if (!vm || (want && vm->manifest.version != want))
            return respond(control::error_reply(
                "no manifest named '" + name.substr(0, 80) + "'" +
                (want ? " of version " + std::to_string(want) +
                            " is known here: a node knows the versions it holds and the newest one announced"
                      : " is known to this node or in the DHT")));
        run(*vm);
    });
}

}  // namespace ps::node
