#include "node/config.hpp"

#include <toml++/toml.h>

#include <unistd.h>

#include <cctype>
#include <functional>

#include "core/types.hpp"
#include "node/keys.hpp"
#include "node/log.hpp"
#include "transfer/connection.hpp"
#include "wire/statement.hpp"

namespace ps::node {

std::string DaemonConfig::name_of(const std::string& key) const {
    auto it = cli.find(key);
    return it != cli.end() ? it->second : key;
}

Error DaemonConfig::problem(const std::string& key, const std::string& what) const {
    bool from_cli = cli.count(key) != 0;
    std::string prefix = !from_cli && !source.empty() ? source + ": " : "";
    return err(prefix + name_of(key) + ": " + what);
}

std::string DaemonConfig::control_path() const {
    if (control_socket == "none") return "";
    if (!control_socket.empty()) return control_socket;
    return data_dir + "/" + kDefaultControlSocket;
}

Result<std::uint64_t> parse_size(std::string_view v) {
    std::size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) ++digits;
    std::string_view rest = v.substr(digits);
    int shift = rest.empty() ? 0 : rest == "K" ? 10 : rest == "M" ? 20 : rest == "G" ? 30 : rest == "T" ? 40 : -1;
    if (digits == 0 || digits > 12 || shift < 0) return err("'" + std::string(v.substr(0, 64)) + "'");
    std::uint64_t n = std::stoull(std::string(v.substr(0, digits)));
    if (shift && n > (~0ull >> shift)) return err("'" + std::string(v.substr(0, 64)) + "' is too large");
    return n << shift;
}

Result<std::uint64_t> parse_duration_ms(std::string_view v) {
    std::size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) ++digits;
    std::string_view unit = v.substr(digits);
    std::uint64_t mult = unit == "ms" ? 1 : (unit.empty() || unit == "s") ? 1000 : unit == "m" ? 60'000 : unit == "h" ? 3'600'000 : 0;
    if (digits == 0 || digits > 9 || mult == 0) return err("'" + std::string(v.substr(0, 64)) + "'");
    std::uint64_t n = std::stoull(std::string(v.substr(0, digits))) * mult;
    if (n > kMaxConfigDurationMs) return err("'" + std::string(v.substr(0, 64)) + "' is longer than a week");
    return n;
}

namespace {

const char* type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        default: return "nothing";
    }
}

// Reads typed values out of the parsed document, naming keys in errors.
struct Reader {
    DaemonConfig& cfg;

    Error wrong(const std::string& key, const toml::node& n, const char* want) const {
        return cfg.problem(key, std::string("expected ") + want + ", got " + type_name(n));
    }

    Status string(const std::string& key, const toml::node& n, std::string& out) const {
        auto v = n.value<std::string>();
        if (!n.is_string() || !v) return wrong(key, n, "a string");
        if (v->size() > kMaxConfigString)
            return cfg.problem(key, "longer than " + std::to_string(kMaxConfigString) + " bytes");
        if (v->find('\0') != std::string::npos) return cfg.problem(key, "contains a NUL character");
        out = *v;
        return {};
    }

    template <typename T>
    Status integer(const std::string& key, const toml::node& n, T& out, std::int64_t lo, std::int64_t hi) const {
        if (!n.is_integer()) return wrong(key, n, "an integer");
        std::int64_t v = n.as_integer()->get();
        if (v < lo || v > hi)
            return cfg.problem(key, std::to_string(v) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
        out = static_cast<T>(v);
        return {};
    }

    // An integer of bytes, or a string with a K/M/G/T suffix.
    Status size(const std::string& key, const toml::node& n, std::uint64_t& out, const char* example) const {
        if (n.is_integer()) {
            std::int64_t v = n.as_integer()->get();
            if (v < 0) return cfg.problem(key, "must not be negative");
            out = static_cast<std::uint64_t>(v);
            return {};
        }
        if (!n.is_string()) return wrong(key, n, "an integer or a string such as \"10M\"");
        auto s = *n.value<std::string>();
        auto v = parse_size(s);
        if (!v) return cfg.problem(key, v.error() + " is not " + example);
        out = *v;
        return {};
    }

    Status boolean(const std::string& key, const toml::node& n, bool& out) const {
        if (!n.is_boolean()) return wrong(key, n, "true or false");
        out = n.as_boolean()->get();
        return {};
    }

    // Whole seconds as an integer, or a string such as "500ms", "30s", "5m", "1h".
    Status duration(const std::string& key, const toml::node& n, std::uint64_t& out_ms) const {
        if (n.is_integer()) {
            std::int64_t v = n.as_integer()->get();
            if (v < 0 || std::uint64_t(v) > kMaxConfigDurationMs / 1000)
                return cfg.problem(key, std::to_string(v) + " seconds is out of range 0..604800");
            out_ms = std::uint64_t(v) * 1000;
            return {};
        }
        if (!n.is_string()) return wrong(key, n, "seconds, or a string such as \"30s\" or \"5m\"");
        auto v = parse_duration_ms(*n.value<std::string>());
        if (!v) return cfg.problem(key, v.error() + " is not a duration such as 500ms, 30s, 5m or 1h");
        out_ms = *v;
        return {};
    }

    Status strings(const std::string& key, const toml::node& n, std::vector<std::string>& out) const {
        if (!n.is_array()) return wrong(key, n, "an array of strings");
        auto& arr = *n.as_array();
        if (arr.size() > kMaxConfigList)
            return cfg.problem(key, "has " + std::to_string(arr.size()) + " entries, at most " +
                                        std::to_string(kMaxConfigList) + " allowed");
        std::vector<std::string> v;
        for (std::size_t i = 0; i < arr.size(); ++i) {
            std::string s;
            if (auto st = string(key + "[" + std::to_string(i) + "]", arr[i], s); !st) return st;
            v.push_back(std::move(s));
        }
        out = std::move(v);
        return {};
    }
};

using KeyFn = std::function<Status(const std::string& key, const toml::node&)>;

// Applies each key of `table` through `fns`; an unknown key is an error.
Status walk(const DaemonConfig& cfg, const std::string& prefix, const toml::table& table,
            const std::map<std::string, KeyFn>& fns) {
    for (auto&& [k, v] : table) {
        std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
        auto it = fns.find(std::string(k.str()));
        if (it == fns.end()) return cfg.problem(key, "unknown key");
        if (auto st = it->second(key, v); !st) return st;
    }
    return {};
}

// device.on_complete: a program, or a program and its arguments.
Status read_on_complete(const Reader& r, const std::string& key, const toml::node& n, DaemonConfig& cfg) {
    if (n.is_string()) {
        std::string prog;
        if (auto st = r.string(key, n, prog); !st) return st;
        cfg.on_complete = {prog};
        return {};
    }
    if (!n.is_array()) return r.wrong(key, n, "a string or an array of strings");
    return r.strings(key, n, cfg.on_complete);
}

// [[serve]]: the manifest and file of each patch an origin serves.
Status read_serve(const Reader& r, const std::string& key, const toml::node& n, DaemonConfig& cfg) {
    if (!n.is_array_of_tables()) return r.wrong(key, n, "an array of tables ([[serve]])");
    auto& arr = *n.as_array();
    if (arr.size() > kMaxConfigList)
        return cfg.problem(key, "has " + std::to_string(arr.size()) + " entries, at most " +
                                    std::to_string(kMaxConfigList) + " allowed");
    auto str = [&r](std::string& out) -> KeyFn {
        return [&r, &out](const std::string& k, const toml::node& v) { return r.string(k, v, out); };
    };
    std::vector<ServeEntry> out;
    for (std::size_t i = 0; i < arr.size(); ++i) {
        ServeEntry e;
        std::string k = key + "[" + std::to_string(i) + "]";
        if (auto st = walk(cfg, k, *arr[i].as_table(), {{"manifest", str(e.manifest)}, {"file", str(e.file)}}); !st)
            return st;
        if (e.manifest.empty()) return cfg.problem(k + ".manifest", "missing");
        if (e.file.empty()) return cfg.problem(k + ".file", "missing");
        out.push_back(std::move(e));
    }
    cfg.serve = std::move(out);
    return {};
}

constexpr const char* kSizeExample = "a size such as 500M or 20G (bytes)";
constexpr const char* kRateExample = "a rate such as 500K, 10M or 1G (bytes per second)";

KeyFn size_key(Reader& r, std::uint64_t& out, const char* example) {
    return [&r, &out, example](const std::string& key, const toml::node& n) { return r.size(key, n, out, example); };
}

// [policy]: what a device vendor allows (docs/daemon.md, "Device policies").
std::map<std::string, KeyFn> policy_keys(Reader& r, DaemonConfig& cfg) {
    auto& p = cfg.policy;
    auto text = [&r, &cfg](Status (*parse)(std::string_view, core::DevicePolicy&)) -> KeyFn {
        return [&r, &cfg, parse](const std::string& key, const toml::node& n) -> Status {
            std::string v;
            if (auto st = r.string(key, n, v); !st) return st;
            if (auto st = parse(v, cfg.policy); !st) return cfg.problem(key, st.error());
            return {};
        };
    };
    return {
        {"min_battery", [&r, &p](const std::string& key, const toml::node& n) { return r.integer(key, n, p.min_battery, 0, 100); }},
        {"metered", [&r, &cfg](const std::string& key, const toml::node& n) { return r.boolean(key, n, cfg.metered); }},
        {"upload_on_metered", [&r, &p](const std::string& key, const toml::node& n) { return r.boolean(key, n, p.upload_on_metered); }},
        {"monthly_upload_cap", size_key(r, p.monthly_upload_cap, kSizeExample)},
        {"business_hours", text(core::parse_business_hours)},
        {"business_days", text(core::parse_business_days)},
        {"business_upload", size_key(r, p.hours_upload_rate, kRateExample)},
        {"business_download", size_key(r, p.hours_download_rate, kRateExample)},
        {"min_free_disk", size_key(r, p.min_free_disk, kSizeExample)},
    };
}

// [dashboard]: listen, publish, interval.
std::map<std::string, KeyFn> dashboard_keys(Reader& r, DaemonConfig& cfg) {
    return {
        {"listen", [&r, &cfg](const std::string& k, const toml::node& v) { return r.string(k, v, cfg.dashboard); }},
        {"publish", [&r, &cfg](const std::string& k, const toml::node& v) { return r.boolean(k, v, cfg.dashboard_publish); }},
        {"interval", [&r, &cfg](const std::string& k, const toml::node& v) { return r.duration(k, v, cfg.dashboard_interval_ms); }},
    };
}

Status read_document(const toml::table& doc, DaemonConfig& cfg) {
    Reader r{cfg};
    auto section = [&](std::map<std::string, KeyFn> fns) -> KeyFn {
        return [&cfg, fns = std::move(fns)](const std::string& key, const toml::node& n) -> Status {
            if (!n.is_table()) return cfg.problem(key, std::string("expected a table, got ") + type_name(n));
            return walk(cfg, key, *n.as_table(), fns);
        };
    };
    auto str = [&](std::string& out) -> KeyFn {
        return [&r, &out](const std::string& key, const toml::node& n) { return r.string(key, n, out); };
    };
    auto rate = [&r](std::uint64_t& out) { return size_key(r, out, kRateExample); };
    std::map<std::string, KeyFn> top{
        {"node", section({
                     {"data", str(cfg.data_dir)}, {"role", str(cfg.role)}, {"domain", str(cfg.domain)},
                     {"trust", str(cfg.trust)}, {"certificate", str(cfg.certificate)},
                     {"freshness_window",
                      [&](const std::string& key, const toml::node& n) { return r.duration(key, n, cfg.freshness_window_ms); }},
                     {"listen", str(cfg.listen)},
                     {"advertise", str(cfg.advertise)},
                     {"portmap", str(cfg.portmap)},
                     {"max_peers", [&](const std::string& key, const toml::node& n) {
                          return r.integer(key, n, cfg.max_peers, 1, 4096);
                      }},
                 })},
        {"dht", section({
                    {"port", [&](const std::string& key, const toml::node& n) {
                         return r.integer(key, n, cfg.dht_port, 0, 65535);
                     }},
                    {"bootstrap", [&](const std::string& key, const toml::node& n) {
                         return r.strings(key, n, cfg.bootstrap);
                     }},
                    {"bind6", str(cfg.dht_bind6)},
                    {"lan_discovery", str(cfg.lan_discovery)},
                })},
        {"limits", section({
                       {"upload", rate(cfg.upload_limit)},
                       {"download", rate(cfg.download_limit)},
                       {"uplink", rate(cfg.uplink)},
                       {"device_uplink", rate(cfg.device_uplink)},
                       {"upload_slots", [&](const std::string& key, const toml::node& n) {
                            return r.integer(key, n, cfg.upload_slots, 0, 1024);
                        }},
                       {"quota", [&](const std::string& key, const toml::node& n) {
                            return r.size(key, n, cfg.quota, "a size such as 500M or 20G (bytes)");
                        }},
                       {"scrub", rate(cfg.scrub_rate)},
                   })},
        {"control", section({
                        {"socket", str(cfg.control_socket)},
                        {"metrics", str(cfg.metrics)},
                    })},
        {"log", section({{"level", str(cfg.log_level)}})},
        {"device", section({
                       {"on_complete", [&](const std::string& key, const toml::node& n) {
                            return read_on_complete(r, key, n, cfg);
                        }},
                       {"auto_fetch", [&](const std::string& key, const toml::node& n) {
                            return r.boolean(key, n, cfg.auto_fetch);
                        }},
                       {"start_delay", [&](const std::string& key, const toml::node& n) {
                            return r.duration(key, n, cfg.start_delay_ms);
                        }},
                       {"patches", str(cfg.patches_dir)},
                   })},
        {"cache", section({
                      {"prefetch", [&](const std::string& key, const toml::node& n) {
                           return r.boolean(key, n, cfg.prefetch);
                       }},
                      {"busy", [&](const std::string& key, const toml::node& n) {
                           return r.duration(key, n, cfg.cache_busy_ms);
                       }},
                  })},
        {"policy", section(policy_keys(r, cfg))},
        {"dashboard", section(dashboard_keys(r, cfg))},
        {"serve", [&](const std::string& key, const toml::node& n) { return read_serve(r, key, n, cfg); }},
    };
    return walk(cfg, "", doc, top);
}

}  // namespace

Result<DaemonConfig> parse_config(std::string_view text, const std::string& source, DaemonConfig base) {
    DaemonConfig cfg = std::move(base);
    cfg.source = source;
    if (text.size() > kMaxConfigBytes)
        return err(source + ": " + std::to_string(text.size()) + " bytes, larger than the " +
                   std::to_string(kMaxConfigBytes) + " a config file may have");
    try {
        toml::table doc = toml::parse(text, source);
        if (auto st = read_document(doc, cfg); !st) return std::move(st).take_error();
    } catch (const toml::parse_error& e) {
        auto& where = e.source().begin;
        return err(source + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": " +
                   std::string(e.description()));
    } catch (const std::exception& e) {
        return err(source + ": " + e.what());
    }
    return cfg;
}

Result<DaemonConfig> load_config(const std::string& path, DaemonConfig base) {
    auto bytes = read_file_limited(path, kMaxConfigBytes);
    if (!bytes) return err("config " + path + ": " + bytes.error());
    return parse_config(std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()), path,
                        std::move(base));
}

namespace {

// [dashboard]: an address to listen on, a role that has a dashboard, a sane interval.
Status validate_dashboard(const DaemonConfig& c) {
    if (c.dashboard_interval_ms < 500 || c.dashboard_interval_ms > 600'000)
        return c.problem("dashboard.interval", "must be 500ms..10m");
    if (c.dashboard.empty() && !c.dashboard_publish) return {};
    if (c.role != "origin" && c.role != "super")
        return c.problem(c.dashboard.empty() ? "dashboard.publish" : "dashboard.listen",
                         "only the origin and super-nodes have a dashboard (this node's role is '" + c.role + "')");
    if (c.dashboard_publish && c.role != "super")
        return c.problem("dashboard.publish", "only super-nodes publish domain summaries");
    if (!c.dashboard.empty())
        if (auto ep = transfer::parse_endpoint(c.dashboard); !ep) return c.problem("dashboard.listen", ep.error());
    return {};
}

}  // namespace

Status validate_config(const DaemonConfig& c, bool need_role) {
    auto missing = [&](const std::string& key) {
        return c.problem(key, "missing (set it in the config file or on the command line)");
    };
    if (c.data_dir.empty()) return missing("node.data");
    if (c.role.empty()) {
        if (need_role) return missing("node.role");
    } else if (!role_from_string(c.role)) {
        return c.problem("node.role", "must be origin, super or peer, not '" + c.role + "'");
    }
    if (c.domain.empty()) return missing("node.domain");
    if (!valid_domain(c.domain)) return c.problem("node.domain", "'" + c.domain + "' is not 1-63 characters of a-z, 0-9, -");
    if (c.trust.empty()) return missing("node.trust");
    if (auto ep = transfer::parse_endpoint(c.listen); !ep) return c.problem("node.listen", ep.error());
    if (c.max_peers < 1 || c.max_peers > 4096) return c.problem("node.max_peers", "must be 1..4096");
    if (c.bootstrap.size() > kMaxConfigList)
        return c.problem("dht.bootstrap", "at most " + std::to_string(kMaxConfigList) + " entries");
    for (auto& b : c.bootstrap)
        if (b.size() < 3 || b.find(':') == std::string::npos || b.find_first_of(" \t\r\n") != std::string::npos)
            return c.problem("dht.bootstrap", "'" + b.substr(0, 128) + "' is not HOST:PORT");
    if (!c.advertise.empty() && c.advertise.find_first_of(" \t\r\n/") != std::string::npos)
        return c.problem("node.advertise", "'" + c.advertise.substr(0, 128) + "' is not a host address");
    if (c.lan_discovery != "auto" && c.lan_discovery != "on" && c.lan_discovery != "off")
        return c.problem("dht.lan_discovery", "must be auto, on or off, not '" + c.lan_discovery.substr(0, 64) + "'");
    if (c.portmap != "auto" && c.portmap != "upnp" && c.portmap != "natpmp" && c.portmap != "off")
        return c.problem("node.portmap", "must be auto, upnp, natpmp or off, not '" + c.portmap.substr(0, 64) + "'");
    if (c.upload_slots > 1024) return c.problem("limits.upload_slots", "must be 0..1024");
    if (c.freshness_window_ms != 0 && c.freshness_window_ms < wire::kMinFreshnessWindowMs)
        return c.problem("node.freshness_window", "must be 0 (off) or at least " +
                                                      std::to_string(wire::kMinFreshnessWindowMs / 1000) +
                                                      "s (two of the origin's freshness refreshes)");
    if (auto path = c.control_path(); path.size() > kMaxUnixSocketPath)
        return c.problem(c.control_socket.empty() ? "node.data" : "control.socket",
                         "the control socket path " + path + " is " + std::to_string(path.size()) +
                             " bytes; a Unix socket path may have at most " + std::to_string(kMaxUnixSocketPath) +
                             (c.control_socket.empty() ? " (set control.socket to a shorter path)" : ""));
    if (!c.metrics.empty())
        if (auto ep = transfer::parse_endpoint(c.metrics); !ep) return c.problem("control.metrics", ep.error());
    if (auto st = validate_dashboard(c); !st) return st;
    if (auto l = log::parse_level(c.log_level); !l) return c.problem("log.level", l.error());
    if (!c.on_complete.empty()) {
        const std::string& prog = c.on_complete[0];
        if (prog.empty() || prog[0] != '/')
            return c.problem("device.on_complete", "the program must be an absolute path, not '" + prog + "'");
        if (::access(prog.c_str(), X_OK) != 0)
            return c.problem("device.on_complete", prog + " is not an executable file");
    }
    if (!c.patches_dir.empty() && c.patches_dir[0] != '/')
        return c.problem("device.patches", "must be an absolute path, not '" + c.patches_dir.substr(0, 128) + "'");
    for (std::size_t i = 0; i < c.serve.size(); ++i)
        if (c.serve[i].manifest.empty() || c.serve[i].file.empty())
            return c.problem("serve[" + std::to_string(i) + "]", "needs both manifest and file");
    return {};
}

}  // namespace ps::node
