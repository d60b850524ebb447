// The node daemon's settings: a TOML file (docs/daemon.md, packaging/patchswarm.toml)
// overridden by command-line options. Every problem stops start-up with a
// message that names the key, as the user wrote it:
//   "/etc/patchswarm/patchswarm.toml: limits.upload: '10X' is not a rate such as 500K, 10M or 1G"
//   "--role: must be origin, super or peer, not 'seed'"
//
//   [node]    data, role, domain, trust, certificate, listen, advertise, portmap, max_peers
//   [dht]     port, bootstrap, bind6, lan_discovery
//   [limits]  upload, download (bytes/s), upload_slots, quota (bytes of the data folder), scrub (bytes/s)
//   [control] socket, metrics
//   [log]     level
//   [device]  on_complete (program and arguments; the verified file's path is appended),
//             auto_fetch (mandatory patches when announced), start_delay (random, up to),
//             patches (folder for auto-fetched patches; default DATA/patches)
//   [cache]   prefetch (super-node: every announced patch at once), busy (how long
//             after its last request a cached patch counts as being served)
//   [[serve]] manifest, file   (origin and super-node: complete files to serve)
//
// Limits on the file itself: at most kMaxConfigBytes, strings of at most
// kMaxConfigString bytes, lists of at most kMaxConfigList entries; unknown keys
// and wrongly typed values are errors (a typo must not silently mean "default").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/device_policy.hpp"
#include "core/result.hpp"

namespace ps::node {

inline constexpr std::size_t kMaxConfigBytes = 256 * 1024;
inline constexpr std::size_t kMaxConfigString = 4096;
inline constexpr std::size_t kMaxConfigList = 64;
inline constexpr std::size_t kMaxUnixSocketPath = 107;  // sun_path minus the NUL
inline constexpr std::uint64_t kMaxConfigDurationMs = 7ull * 24 * 3600 * 1000;
// The default control socket, relative to the data folder.
inline constexpr const char* kDefaultControlSocket = "run/control.sock";

struct ServeEntry {
    std::string manifest, file;
};

struct DaemonConfig {
    // [node]
    std::string data_dir;
    std::string role;  // origin | super | peer
    std::string domain;
    std::string trust;
    std::string certificate;  // node certificate file (patchswarm enroll); "" = none
    std::uint64_t freshness_window_ms = 0;  // stale without a freshness statement this recent; 0 = off
    std::string listen = "127.0.0.1:0";
    std::string advertise;  // host written into holder records; default: the listen host
    // Port mapping on the LAN's gateway when unreachable: auto (UPnP IGD, then
    // NAT-PMP), upnp, natpmp or off.
    std::string portmap = "auto";
    std::uint32_t max_peers = 32;
    // [dht]
    std::uint16_t dht_port = 0;
    std::vector<std::string> bootstrap;
    // LAN discovery: auto (on when bootstrap is empty and the node does not
    // listen on loopback), on, off.
    std::string lan_discovery = "auto";
    std::string dht_bind6;  // default: ::1 for a loopback listen address, else ::
    // [limits]
    std::uint64_t upload_limit = 0, download_limit = 0;  // bytes/s, 0 = none
    // The uplink's capacity and a device's in this domain, bytes/s (0 = unknown):
    // a super-node faster than all its devices together imports alone.
    std::uint64_t uplink = 0, device_uplink = 0;
    std::uint32_t upload_slots = 0;                      // 0 = the role's default
    std::uint64_t quota = 0;                             // bytes, 0 = none
    std::uint64_t scrub_rate = 8u << 20;                 // bytes/s the background scrub re-checks, 0 = off
    // [control]
    std::string control_socket;  // "" = DATA/run/control.sock; "none" = no control socket
    std::string metrics;         // "" = off; "IP:PORT" serves GET /metrics
    // [log]
    std::string log_level = "warn";
    // [device]
    std::vector<std::string> on_complete;  // argv; empty = no hook
    bool auto_fetch = true;                // fetch mandatory patches when announced (peer role)
    std::uint64_t start_delay_ms = 30'000; // each auto-fetch starts after a random delay up to this
    std::string patches_dir;               // "" = DATA/patches
    // [cache]
    bool prefetch = true;                  // super: fetch every announced patch at once
    std::uint64_t cache_busy_ms = 60'000;  // pinned this long after its last request
    // [policy] device policies (core/device_policy.hpp, docs/daemon.md);
    // `metered` is the vendor's starting value, changed live with `patchswarm policy`.
    core::DevicePolicy policy;
    bool metered = false;
    // [dashboard] (node/dashboard.hpp): origin and super-nodes only
    std::string dashboard;                  // listen: "" = off; "IP:PORT" serves the rollout dashboard
    bool dashboard_publish = false;         // publish: super-node puts its domain summary into the DHT (on with listen)
    std::uint64_t dashboard_interval_ms = 3'000;  // interval: one sample per interval
    // [[serve]]
    std::vector<ServeEntry> serve;

    // Where each setting came from, for error messages: the config file's path,
    // and for keys set on the command line the option that set them.
    std::string source;
    std::map<std::string, std::string> cli;  // "limits.upload" -> "--upload-limit"

    // How errors name a key: "--upload-limit" when set there, else "limits.upload".
    std::string name_of(const std::string& key) const;
    // "<source>: <name_of(key)>: <problem>" (no source prefix for a command-line key).
    Error problem(const std::string& key, const std::string& what) const;
    // The control socket path after defaults ("" when disabled).
    std::string control_path() const;
};

// Parses TOML text over `base` (keys absent from the text keep base's values).
// `source` names the file in errors.
Result<DaemonConfig> parse_config(std::string_view text, const std::string& source, DaemonConfig base = {});
// Reads (at most kMaxConfigBytes) and parses a file.
Result<DaemonConfig> load_config(const std::string& path, DaemonConfig base = {});

// Checks every setting a node needs; `need_role` is false for one-shot fetch
// (which defaults to peer). Names the key and the problem.
Status validate_config(const DaemonConfig&, bool need_role = true);

// "0", "1500", "64K", "10M", "1G", "2T" (powers of 1024) -> bytes.
Result<std::uint64_t> parse_size(std::string_view text);
// "250ms", "30s", "30" (seconds), "5m", "1h" -> milliseconds, at most a week.
Result<std::uint64_t> parse_duration_ms(std::string_view text);

}  // namespace ps::node
