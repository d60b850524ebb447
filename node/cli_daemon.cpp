// Commands that talk to a running node over its control socket (node/control.hpp):
// status, list, add, pause, resume, remove, reload, policy, and `fetch --daemon`.
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>
#include <tuple>

#include "node/cli.hpp"
#include "node/config.hpp"
#include "node/control.hpp"
#include "node/keys.hpp"
#include "node/progress.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"

namespace ps::cli {

void SocketArgs::add_to(CLI::App* sub) {
    sub->add_option("--socket", socket, "Control socket of the node (default: $PATCHSWARM_SOCKET or /run/patchswarm/control.sock)");
    sub->add_option("--config", config, "Find the socket through the node's config file");
    sub->add_option("--data", data, "Find the socket in the node's data folder (DATA/run/control.sock)");
}

Result<std::string> SocketArgs::path() const {
    if (!socket.empty()) return socket;
    if (!config.empty()) {
        auto c = node::load_config(config);
        if (!c) return std::move(c).take_error();
        if (c->control_path().empty()) return err(config + ": the node has no control socket (control.socket = \"none\")");
        return c->control_path();
    }
    if (!data.empty()) return data + "/" + node::kDefaultControlSocket;
    if (const char* env = std::getenv("PATCHSWARM_SOCKET"); env && *env) return std::string(env);
    return std::string("/run/patchswarm/control.sock");
}

namespace {

using json = nlohmann::json;

// One request, one parsed reply, ok or not.
Result<json> call_reply(node::control::Client& c, const std::string& cmd,
                        const std::map<std::string, std::string>& args = {}) {
    auto line = c.call(node::control::make_request(cmd, args));
    if (!line) return std::move(line).take_error();
    json j = json::parse(*line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return err("the node sent a reply that is not JSON");
    return j;
}

// A reply with ok=false as an error, with its code (control::ErrorCode).
Error reply_error(const json& j) {
    const json* code = j.contains("code") ? &j["code"] : nullptr;
    return err(code && code->is_string() ? node::control::code_from_name(code->get<std::string>()) : 0,
               j.value("error", std::string("request failed")));
}

// One request, one parsed reply; a reply with ok=false becomes the error.
Result<json> call(node::control::Client& c, const std::string& cmd, const std::map<std::string, std::string>& args = {}) {
    auto j = call_reply(c, cmd, args);
    if (j && !j->value("ok", false)) return reply_error(*j);
    return j;
}

Result<json> call_once(const SocketArgs& s, const std::string& cmd, const std::map<std::string, std::string>& args = {}) {
    auto path = s.path();
    if (!path) return std::move(path).take_error();
    // Replies that ask the network (add by name, rollout) may take a while.
    auto c = node::control::Client::connect(*path, 60'000);
    if (!c) return std::move(c).take_error();
    return call(*c, cmd, args);
}

std::string human_bytes(double b) { return node::format_bytes(b); }

std::string human_secs(const json& v) {
    return v.is_number() ? node::format_eta(v.get<double>()) : "-";
}

std::string limit(std::uint64_t v) { return v ? human_bytes(double(v)) + "/s" : "none"; }

// "8 s" under a minute, else as human_secs.
std::string short_secs(const json& v) {
    if (!v.is_number() || v.get<double>() >= 60) return human_secs(v);
    return std::to_string(std::lround(v.get<double>())) + " s";
}

// "dht connecting for 12 s: attempt 4, no answer from 127.0.0.1:4222, next retry in 8 s".
void print_dht_join(const json& n) {
    if (!n.contains("dht_join") || n["dht_join"].value("state", "") == "connected") return;
    auto& d = n["dht_join"];
    std::string line = "dht " + d.value("state", "") + " for " + short_secs(d["since_seconds"]);
    if (d.value("state", "") == "waiting") {
        line += ": no bootstrap node configured; waiting for nodes to join this one";
    } else {
        line += ": attempt " + std::to_string(d.value("attempts", 0));
        std::string who;
        for (auto& u : d["unanswered"]) who += (who.empty() ? "" : ", ") + u.get<std::string>();
        if (!who.empty()) line += ", no answer from " + who;
        if (!d["next_retry_in_s"].is_null()) line += ", next retry in " + short_secs(d["next_retry_in_s"]);
        else if (d.value("pinging", false)) line += ", waiting for an answer";
    }
    std::printf("%s\n", line.c_str());
}

void print_status(const json& j) {
    auto& n = j["node"];
    std::printf("node %s  role %s  domain %s  listen :%d  dht :%d\n", n.value("key", "").substr(0, 16).c_str(),
                n.value("role", "").c_str(), n.value("domain", "").c_str(), n.value("listen_port", 0), n.value("dht_port", 0));
    std::printf("peers %d  dht nodes %d  uploading to %d  down %s/s  up %s/s  limits down %s up %s",
                n.value("peers", 0), n.value("dht_nodes", 0), j["uploads"].value("peers", 0),
                human_bytes(j["downloads"].value("rate", 0.0)).c_str(), human_bytes(j["uploads"].value("rate", 0.0)).c_str(),
                limit(n.value("download_limit", 0ull)).c_str(), limit(n.value("upload_limit", 0ull)).c_str());
    if (auto q = n.value("quota", 0ull))
        std::printf("  quota %s of %s", human_bytes(double(n.value("reserved", 0ull))).c_str(), human_bytes(double(q)).c_str());
    std::printf("\n");
    print_dht_join(n);
    if (n.contains("warnings"))
        for (auto& w : n["warnings"]) std::printf("warning: %s\n", w.get<std::string>().c_str());
    std::printf("\n");
    if (j.contains("waiting"))
        for (auto& w : j["waiting"])
            std::printf("%s v%llu waiting for wave (%s): position %.1f%%, wave now %.1f%%, %s\n",
                        w.value("name", "").c_str(), static_cast<unsigned long long>(w.value("version", 0ull)),
                        w.value("waves", "").c_str(), 100 * w.value("wave_position", 0.0),
                        100 * w.value("wave_fraction", 0.0),
                        w["turn_at"].is_null() ? "its turn comes only when the operator widens the wave"
                                               : ("its turn at " + w.value("turn_at_utc", "")).c_str());
    auto& ps = j["patches"];
    if (ps.empty()) {
        std::printf("no patches\n");
        return;
    }
    std::printf("%-10s %-20s %7s %-11s %7s %10s %10s %7s  %s\n", "ID", "PATCH", "VERSION", "STATE", "DONE", "DOWN/s",
                "UP/s", "ETA", "FROM peer/super/other/origin, UPLOADED");
    for (auto& p : ps) {
        auto& f = p["bytes_from"];
        std::string from = human_bytes(double(f.value("same_domain_peer", 0ull))) + " / " +
                           human_bytes(double(f.value("same_domain_super", 0ull))) + " / " +
                           human_bytes(double(f.value("other_domain", 0ull))) + " / " +
                           human_bytes(double(f.value("origin", 0ull))) + ", " +
                           human_bytes(double(p.value("bytes_uploaded", 0ull)));
        std::printf("%-10s %-20s %7llu %-11s %6.1f%% %10s %10s %7s  %s\n", p.value("id", "").substr(0, 8).c_str(),
                    p.value("name", "").substr(0, 20).c_str(), static_cast<unsigned long long>(p.value("version", 0ull)),
                    p.value("state", "").c_str(), 100.0 * p.value("progress", 0.0),
                    human_bytes(p.value("rate_down", 0.0)).c_str(), human_bytes(p.value("rate_up", 0.0)).c_str(),
                    human_secs(p["eta_seconds"]).c_str(), from.c_str());
        if (p.contains("error")) std::printf("           error: %s\n", p.value("error", "").c_str());
        if (p.value("state", "") == "downloading" && p.value("holders", 0) == 0 && !p["next_lookup_in_s"].is_null())
            std::printf("           no holders found yet, next lookup in %s\n", short_secs(p["next_lookup_in_s"]).c_str());
        if (p.contains("hook")) std::printf("           on-complete hook: %s\n", p.value("hook", "").c_str());
    }
}

// A reply as the user asked for it: JSON (without the protocol's fields) or for people.
void show(json& j, bool as_json, void (*human)(const json&)) {
    j.erase("v");
    j.erase("ok");
    if (as_json) std::printf("%s\n", j.dump(2).c_str());
    else human(j);
}

int run_status(const SocketArgs& s, bool as_json, const std::string& patch) {
    std::map<std::string, std::string> args;
    if (!patch.empty()) args["patch"] = patch;
    auto j = call_once(s, "status", args);
    if (!j) return fail("status", j.error());
    show(*j, as_json, print_status);
    return 0;
}

// "wave 30%", "wave 100% (widened)": a staged patch's wave now, from list or rollout.
std::string wave_text(const json& p) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "wave %g%%%s", 100.0 * p.value("wave_fraction", 0.0),
                  p.contains("widened_to") && !p["widened_to"].is_null() ? " (widened)" : "");
    return buf;
}

int run_list(const SocketArgs& s, bool as_json) {
    auto j = call_once(s, "list");
    if (!j) return fail("list", j.error());
    if (as_json) {
        std::printf("%s\n", (*j)["patches"].dump(2).c_str());
        return 0;
    }
    for (auto& p : (*j)["patches"]) {
        // A patch waiting for its wave has no file yet; it says when its turn comes.
        std::string out = p.value("out", "");
        if (p.contains("turn_at"))
            out = p["turn_at"].is_null() ? "until the operator widens the wave" : "until " + p.value("turn_at_utc", "");
        if (p.contains("wave_fraction")) out += (out.empty() ? "" : "  ") + wave_text(p);
        std::printf("%s  %-20s v%-6llu %-11s %5.1f%%  %s\n", p.value("id", "").substr(0, 16).c_str(),
                    p.value("name", "").c_str(), static_cast<unsigned long long>(p.value("version", 0ull)),
                    p.value("state", "").c_str(), 100.0 * p.value("progress", 0.0), out.c_str());
    }
    return 0;
}

std::string absolute(const std::string& p) {
    std::error_code ec;
    auto a = std::filesystem::absolute(p, ec);
    return ec ? p : a.lexically_normal().string();
}

int run_simple(const SocketArgs& s, const std::string& cmd, const std::string& patch) {
    auto j = call_once(s, cmd, {{"patch", patch}});
    if (!j) return fail(cmd, j.error());
    std::printf("%s %s\n", cmd == "pause" ? "paused" : cmd == "resume" ? "resumed" : "removed",
                j->value("id", "").c_str());
    return 0;
}

// Adds the download, by manifest file or by patch name; returns the manifest
// id (also when it was already there).
Result<std::string> add(node::control::Client& c, const std::string& manifest, const std::string& name,
                        const std::string& out, bool* existed) {
    std::map<std::string, std::string> args;
    std::string id;
    if (!manifest.empty()) {
        auto bytes = node::read_file_limited(manifest, wire::kMaxManifestBytes);
        if (!bytes) return err(manifest + ": " + bytes.error());
        id = to_hex(wire::manifest_id(*bytes));
        args["manifest"] = absolute(manifest);
    } else {
        args["name"] = name;
    }
    if (!out.empty()) args["out"] = absolute(out);
    auto j = call_reply(c, "add", args);
    if (!j) return std::move(j).take_error();
    if (!j->value("ok", false)) {
        Error e = reply_error(*j);
        if (e.code != node::control::kErrAlreadyHere) return e;
        if (existed) *existed = true;
        return id.empty() ? j->value("id", id) : id;
    }
    return j->value("id", id);
}

void print_rollout(const json& j) {
    std::uint64_t online = j.value("online", 0ull), complete = j.value("complete", 0ull);
    std::printf("%s v%llu (%s): %llu of %llu nodes online have it complete, in %zu domains%s\n",
                j.value("name", "").c_str(), static_cast<unsigned long long>(j.value("version", 0ull)),
                j.value("id", "").substr(0, 16).c_str(), static_cast<unsigned long long>(complete),
                static_cast<unsigned long long>(online), j["domains"].size(),
                j.value("capped", false) ? " (some counts reached the DHT's per-key limit)" : "");
    if (j.value("wave_fraction", 1.0) < 1.0 || !j.value("widened_to", json()).is_null())
        std::printf("%s of devices\n", wave_text(j).c_str());
    std::printf("%-20s %7s %8s %9s %7s %9s\n", "DOMAIN", "ONLINE", "HOLDING", "COMPLETE", "SUPER", "SEGMENTS");
    for (auto& d : j["domains"]) {
        auto total = d.value("segments_total", 0ull);
        char sup[32];
        if (d.value("supers", 0u)) std::snprintf(sup, sizeof sup, "%u/%u", d.value("supers_complete", 0u), d.value("supers", 0u));
        else std::snprintf(sup, sizeof sup, "-");
        std::printf("%-20s %7u %8u %9u %7s %8.1f%%\n", d.value("domain", "").c_str(), d.value("online", 0u),
                    d.value("holders", 0u), d.value("complete", 0u), sup,
                    total ? 100.0 * double(d.value("segments_held", 0ull)) / double(total) : 0.0);
    }
}

}  // namespace

int announce_via_daemon(const SocketArgs& s, const std::string& manifest, const std::string& file) {
    auto j = call_once(s, "publish", {{"manifest", absolute(manifest)}, {"file", absolute(file)}});
    if (!j) return fail("publish", "--announce: " + j.error());
    std::printf("announced %s v%llu (%s) through the origin to %d connected peers%s; it is also in the DHT under its name\n",
                j->value("name", "").c_str(), static_cast<unsigned long long>(j->value("version", 0ull)),
                j->value("id", "").substr(0, 16).c_str(), j->value("peers", 0),
                j->value("already", false) ? " (the origin was serving it already)" : "");
    return 0;
}

int fetch_via_daemon(const std::string& socket, const std::string& manifest, const std::string& name,
                     const std::string& out, double timeout) {
    const std::string cmd = "fetch";
    auto c = node::control::Client::connect(socket, 60'000);
    if (!c) return fail(cmd, c.error());
    bool existed = false;
    auto id = add(*c, manifest, name, out, &existed);
    if (!id) return fail(cmd, id.error());
    node::ProgressPrinter progress(stdout, ::isatty(1) == 1);
    auto started = std::chrono::steady_clock::now();
    for (;;) {
        auto j = call(*c, "status", {{"patch", *id}});
        if (!j) return fail(cmd, j.error());
        auto& ps = (*j)["patches"];
        if (ps.empty()) return fail(cmd, "the node no longer has the patch (removed?)");
        auto& p = ps[0];
        std::string state = p.value("state", "");
        auto elapsed = std::chrono::steady_clock::now() - started;
        double secs = std::chrono::duration<double>(elapsed).count();
        std::uint64_t total = p.value("size", 0ull), held = p.value("held_bytes", 0ull);
        progress.update(std::uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()), held,
                        total, state);
        if (state == "complete") {
            progress.finish();
            std::printf("complete %s in %.2f s%s\n", p.value("out", out).c_str(), secs, existed ? " (already added)" : "");
            return 0;
        }
        if (state == "failed") {
            progress.finish();
            return fail(cmd, p.value("error", std::string("download failed")));
        }
        if (timeout > 0 && secs >= timeout) {
            progress.finish();
            return fail(cmd, "timed out after " + std::to_string(int(timeout)) + " s at " +
                                 std::to_string(int(100 * node::fraction(held, total))) + "% (the node keeps downloading)",
                        kExitTimeout);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

namespace {

int run_add(const SocketArgs& s, const std::string& manifest, const std::string& name, const std::string& outp) {
    if (manifest.empty() == name.empty()) return fail("add", "give either --manifest or --name", kExitUsage);
    auto path = s.path();
    if (!path) return fail("add", path.error());
    auto c = node::control::Client::connect(*path, 60'000);
    if (!c) return fail("add", c.error());
    bool existed = false;
    auto id = add(*c, manifest, name, outp, &existed);
    if (!id) return fail("add", id.error());
    if (existed) return fail("add", "patch " + id->substr(0, 16) + " is already here");
    std::printf("added %s\n", id->c_str());
    return 0;
}

int run_rollout(const SocketArgs& s, const std::string& name, std::uint64_t version, bool as_json, double watch) {
    for (;;) {
        std::map<std::string, std::string> args{{"name", name}};
        if (version) args["version"] = std::to_string(version);
        auto j = call_once(s, "rollout", args);
        if (!j) return fail("rollout", j.error());
        show(*j, as_json, print_rollout);
        std::fflush(stdout);
        if (watch <= 0) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(watch * 1000)));
        if (!as_json) std::printf("\n");
    }
}

// `policy`: the vendor tells a running node the device's state; it prints what
// the device policies allow now.
void add_policy_command(CLI::App& app, Commands& out) {
    auto* sub = app.add_subcommand("policy", "Tell a running node the device's battery, power and metered state, "
                                             "and show what its device policies allow now");
    auto s = std::make_shared<SocketArgs>();
    auto args = std::make_shared<std::map<std::string, std::string>>();
    auto as_json = std::make_shared<bool>(false);
    s->add_to(sub);
    for (auto [flag, key, help] : {std::tuple{"--battery", "battery", "Battery level in percent, or 'unknown'"},
                                   std::tuple{"--on-ac", "on_ac", "yes: on mains power; no: on battery"},
                                   std::tuple{"--metered", "metered", "yes: the link is metered (no uploads unless allowed)"}})
        sub->add_option_function<std::string>(flag, [args, key = std::string(key)](const std::string& v) { (*args)[key] = v; }, help);
    sub->add_flag("--json", *as_json, "Print JSON");
    out.emplace_back(sub, [s, args, as_json] {
        auto j = call_once(*s, "policy", *args);
        if (!j) return fail("policy", j.error());
        auto& p = (*j)["policy"];
        if (*as_json) {
            std::printf("%s\n", p.dump(2).c_str());
            return 0;
        }
        std::string because = p["refused_because"].is_null() ? "" : " (" + p.value("refused_because", "") + ")";
        std::printf("uploads %s%s; battery %s, %s, %s; uploaded this month %s%s%s\n", p.value("uploads", "").c_str(),
                    because.c_str(), p["battery"].is_null() ? "unknown" : (std::to_string(p.value("battery", 0)) + "%").c_str(),
                    p.value("on_ac", true) ? "on AC" : "on battery", p.value("metered", false) ? "metered" : "not metered",
                    human_bytes(double(p.value("month_uploaded", 0ull))).c_str(),
                    p.value("monthly_upload_cap", 0ull) ? (" of " + human_bytes(double(p.value("monthly_upload_cap", 0ull)))).c_str() : "",
                    p.value("business_hours", false) ? "; business hours" : "");
        if (p.value("caching_refused", 0ull))
            std::printf("new downloads refused %llu times, last: %s\n",
                        static_cast<unsigned long long>(p.value("caching_refused", 0ull)),
                        p.value("caching_refused_last", "").c_str());
        return 0;
    });
}

}  // namespace

Result<std::string> listed_manifest_id(const SocketArgs& s, const std::string& name, std::uint64_t version) {
    auto j = call_once(s, "list");
    if (!j) return std::move(j).take_error();
    for (auto& p : (*j)["patches"])
        if (p.value("name", "") == name && p.value("version", 0ull) == version) return p.value("id", std::string());
    return err("the node does not list " + name + " v" + std::to_string(version) +
               " (it lists the patches it serves, downloads or waits for); give --manifest FILE");
}

// `statement`: hands a signed operator statement to a running node.
static void add_statement_command(CLI::App& app, Commands& out) {
    {
        auto o = std::make_shared<std::pair<SocketArgs, std::string>>();
        auto* sub = app.add_subcommand("statement",
                                       "Hand a signed operator statement (rotate-key --statement-out, revoke-cert, halt, "
                                       "widen) to a running node, which applies it and spreads it to the whole network");
        sub->add_option("--file", o->second, "Statement file")->required();
        o->first.add_to(sub);
        out.emplace_back(sub, [o] {
            auto bytes = node::load_statement_file(o->second);
            if (!bytes) return fail("statement", bytes.error());
            auto j = call_once(o->first, "statement", {{"statement", to_hex(*bytes)}});
            if (!j) return fail("statement", j.error());
            std::printf("statement %s applied and spreading\n", o->second.c_str());
            return kExitOk;
        });
    }
}

void add_daemon_commands(CLI::App& app, Commands& out) {
    add_statement_command(app, out);
    {
        auto* sub = app.add_subcommand("status", "Show a running node: patches, progress, peers, rates, where bytes came from");
        auto s = std::make_shared<SocketArgs>();
        auto as_json = std::make_shared<bool>(false);
        auto patch = std::make_shared<std::string>();
        s->add_to(sub);
        sub->add_flag("--json", *as_json, "Print the node's reply as JSON");
        sub->add_option("patch", *patch, "Only this patch (manifest id prefix or name)");
        out.emplace_back(sub, [s, as_json, patch] { return run_status(*s, *as_json, *patch); });
    }
    {
        auto* sub = app.add_subcommand("list", "List the patches a running node takes part in");
        auto s = std::make_shared<SocketArgs>();
        auto as_json = std::make_shared<bool>(false);
        s->add_to(sub);
        sub->add_flag("--json", *as_json, "Print JSON");
        out.emplace_back(sub, [s, as_json] { return run_list(*s, *as_json); });
    }
    {
        auto* sub = app.add_subcommand("add", "Have a running node download a patch (kept across restarts)");
        auto s = std::make_shared<SocketArgs>();
        auto manifest = std::make_shared<std::string>();
        auto name = std::make_shared<std::string>();
        auto outp = std::make_shared<std::string>();
        s->add_to(sub);
        sub->add_option("--manifest", *manifest, "Signed manifest of the patch (the node must be able to read it)");
        sub->add_option("--name", *name, "...or the patch name: the newest manifest the node knows or finds in the DHT");
        sub->add_option("--out", *outp,
                        "Where the node writes the verified patch (default: DATA/patches/NAME-vVERSION; "
                        "a super-node keeps it in its cache only)");
        out.emplace_back(sub, [s, manifest, name, outp] { return run_add(*s, *manifest, *name, *outp); });
    }
    for (const char* name : {"pause", "resume", "remove"}) {
        std::string help = std::string(name) == "pause"    ? "Stop downloading a patch (serving goes on)"
                           : std::string(name) == "resume" ? "Resume downloading a paused patch"
                                                           : "Stop taking part in a patch and delete its download folder";
        auto* sub = app.add_subcommand(name, help);
        auto s = std::make_shared<SocketArgs>();
        auto patch = std::make_shared<std::string>();
        s->add_to(sub);
        sub->add_option("patch", *patch, "Manifest id prefix or patch name")->required();
        out.emplace_back(sub, [s, patch, cmd = std::string(name)] { return run_simple(*s, cmd, *patch); });
    }
    {
        auto* sub = app.add_subcommand("rollout", "Show, per domain, how many nodes completed a patch (asks the network "
                                                  "through a running node, usually the origin)");
        auto s = std::make_shared<SocketArgs>();
        auto name = std::make_shared<std::string>();
        auto version = std::make_shared<std::uint64_t>(0);
        auto as_json = std::make_shared<bool>(false);
        auto watch = std::make_shared<double>(0);
        s->add_to(sub);
        sub->add_option("name", *name, "Patch name")->required();
        sub->add_option("--version", *version, "This version (default: the newest known)");
        sub->add_flag("--json", *as_json, "Print JSON");
        sub->add_option("--watch", *watch, "Repeat every this many seconds until interrupted");
        out.emplace_back(sub, [s, name, version, as_json, watch] {
            return run_rollout(*s, *name, *version, *as_json, *watch);
        });
    }
    {
        auto* sub = app.add_subcommand("reload", "Make a running node re-read its config file (as SIGHUP does)");
        auto s = std::make_shared<SocketArgs>();
        s->add_to(sub);
        out.emplace_back(sub, [s] {
            auto j = call_once(*s, "reload");
            if (!j) return fail("reload", j.error());
            std::printf("reloaded\n");
            return 0;
        });
    }
    add_policy_command(app, out);
}

}  // namespace ps::cli
