// `patchswarm sim`: the discrete-event simulator (sim/) from the command line.
// Runs one or more delivery models over the same population and arrivals,
// writes CSV, JSON, a summary table and (with gnuplot) PNG plots. Wall-clock
// time and peak RSS are measured here, never inside sim/.
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "node/cli.hpp"
#include "node/keys.hpp"
#include "sim/domains.hpp"
#include "sim/sim.hpp"
#include "sim/theory.hpp"

namespace ps::cli {

namespace {

struct SimArgs {
    std::vector<std::string> models{"p2p-locality"};
    std::string level = "download";
    std::uint64_t devices = 100'000;
    std::uint32_t domains = 30;
    std::string domain_sizes_file;
    std::string domain_dist = "pareto";
    double domain_alpha = 1.2;
    std::string arrival = "poll";
    double poll_hours = 20;
    double flash_minutes = 30;
    double online_minutes = 1;
    std::string online_dist = "fixed";
    double patch_mib = 16;
    std::uint64_t seed = 1;
    std::string out;
    sim::Scenario defaults;
    std::string remote_peers = "yes", remote_supers = "yes", coordinate_imports = "yes", trace = "no";
    std::uint64_t request_timeout_ms = core::DownloadConfig{}.request_timeout;
    std::uint32_t max_requests_per_peer = core::DownloadConfig{}.max_requests_per_peer;
    std::uint64_t endgame_after_ms = core::DownloadConfig{}.endgame_after;
    std::uint64_t busy_backoff_ms = core::DownloadConfig{}.busy_backoff;
    std::uint64_t local_far_delay_ms = core::DownloadConfig{}.local_far_delay;
    std::string plots = "auto";
    std::string super_fetch = "release";
};

Result<bool> yes_no(const std::string& flag, const std::string& v) {
    if (v == "yes") return true;
    if (v == "no") return false;
    return err(flag + " must be yes or no, not '" + v + "'");
}

Result<std::string> read_text(const std::string& path, std::size_t limit) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    if (ec) return err("cannot read " + path + ": " + ec.message());
    if (size > limit) return err(path + " is larger than " + std::to_string(limit) + " bytes");
    std::ifstream in(path, std::ios::binary);
    if (!in) return err("cannot open " + path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text;
}

// Builds the scenario and the list of models from the flags.
Result<std::pair<sim::Scenario, std::vector<sim::Model>>> make_scenario(const SimArgs& a, const CLI::App& sub) {
    sim::Scenario s = a.defaults;
    std::vector<sim::Model> models;
    for (auto& m : a.models) {
        if (m == "all") {
            models.assign(sim::kAllModels.begin(), sim::kAllModels.end());
            continue;
        }
        auto v = sim::model_from_string(m);
        if (!v) return err("--model: unknown model '" + m + "' (client-server, caching, p2p-random, p2p-locality, p2p-stay, p2p-full, all)");
        models.push_back(*v);
    }
    if (models.empty()) return err("--model: no model given");
    auto level = sim::level_from_string(a.level);
    if (!level) return err("--level must be download or segment, not '" + a.level + "'");
    auto arrival = sim::arrival_from_string(a.arrival);
    if (!arrival) return err("--arrival must be poll, poll-exp or flash, not '" + a.arrival + "'");
    auto online = sim::online_dist_from_string(a.online_dist);
    if (!online) return err("--online-dist must be fixed or exp, not '" + a.online_dist + "'");
    auto dd = sim::domain_dist_from_string(a.domain_dist);
    if (!dd) return err("--domain-dist must be pareto or equal, not '" + a.domain_dist + "'");
    auto rp = yes_no("--remote-peers", a.remote_peers);
    if (!rp) return std::move(rp).take_error();
    auto rs = yes_no("--remote-supers", a.remote_supers);
    if (!rs) return std::move(rs).take_error();
    s.model = models.front();
    s.level = *level;
    s.devices = a.devices;
    s.domains = a.domains;
    s.domain_dist = *dd;
    s.domain_alpha = a.domain_alpha;
    s.arrival = *arrival;
    s.poll_hours = a.poll_hours;
    s.flash_minutes = a.flash_minutes;
    s.online_minutes = a.online_minutes;
    s.online_dist = *online;
    s.patch_mib = a.patch_mib;
    s.seed = a.seed;
    if (a.super_fetch != "release" && a.super_fetch != "demand")
        return err("--super-fetch must be release or demand, not '" + a.super_fetch + "'");
    s.super_at_release = a.super_fetch == "release";
    s.remote_peers = *rp;
    s.remote_supers = *rs;
    s.download.request_timeout = a.request_timeout_ms;
    s.download.max_requests_per_peer = a.max_requests_per_peer;
    s.download.endgame_after = a.endgame_after_ms;
    s.download.busy_backoff = a.busy_backoff_ms;
    s.download.local_far_delay = a.local_far_delay_ms;
    auto ci = yes_no("--coordinate-imports", a.coordinate_imports);
    if (!ci) return std::move(ci).take_error();
    s.coordinate_imports = *ci;
    auto tr = yes_no("--trace", a.trace);
    if (!tr) return std::move(tr).take_error();
    s.trace = *tr;
    if (s.trace && s.level != sim::Level::Segment) return err("--trace needs --level segment");
    if (s.download.max_requests_per_peer == 0) return err("--max-requests-per-peer must be at least 1");
    if (!a.domain_sizes_file.empty()) {
        // One size per line, at most ~11 bytes each.
        auto text = read_text(a.domain_sizes_file, sim::kMaxDomainLines * 12);
        if (!text) return err("--domain-sizes: " + text.error());
        auto sizes = sim::parse_domain_sizes(*text);
        if (!sizes) return err("--domain-sizes " + a.domain_sizes_file + ": " + sizes.error());
        std::uint64_t total = 0;
        for (auto n : *sizes) total += n;
        if (sub.count("--devices") && total != a.devices)
            return err("--devices " + std::to_string(a.devices) + " but the domain sizes add up to " + std::to_string(total));
        if (sub.count("--domains") && sizes->size() != a.domains)
            return err("--domains " + std::to_string(a.domains) + " but the file lists " + std::to_string(sizes->size()));
        s.domain_sizes = std::move(*sizes);
        s.devices = total;
        s.domains = static_cast<std::uint32_t>(s.domain_sizes.size());
    }
    if (auto st = sim::validate(s); !st) return std::move(st).take_error();
    return std::make_pair(std::move(s), std::move(models));
}

std::uint64_t peak_rss_bytes() {
    struct rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<std::uint64_t>(ru.ru_maxrss) * 1024;
}

nlohmann::json scenario_json(const sim::Scenario& s) {
    nlohmann::json j;
    j["level"] = std::string(sim::to_string(s.level));
    j["devices"] = s.devices;
    j["domains"] = s.domain_sizes.empty() ? s.domains : s.domain_sizes.size();
    j["domain_sizes"] = s.domain_sizes.empty() ? std::string(sim::to_string(s.domain_dist)) : "file";
    j["domain_alpha"] = s.domain_alpha;
    j["arrival"] = std::string(sim::to_string(s.arrival));
    j["poll_hours"] = s.poll_hours;
    j["flash_minutes"] = s.flash_minutes;
    j["online_minutes"] = s.online_minutes;
    j["online_dist"] = std::string(sim::to_string(s.online_dist));
    j["patch_mib"] = s.patch_mib;
    j["seed"] = s.seed;
    auto cap = [](const sim::Capacity& c) {
        return nlohmann::json{{"down_mbps", c.down_mbps}, {"up_mbps", c.up_mbps}, {"slots", c.slots}, {"buffer_kib", c.buffer_kib}};
    };
    j["device"] = cap(s.device);
    j["super"] = cap(s.super);
    j["origin"] = cap(s.origin);
    j["stay_factor"] = s.stay_factor;
    j["seed_max_hours"] = s.seed_max_hours;
    j["cache_min_devices"] = s.cache_min_devices;
    j["supers"] = s.supers;
    j["super_fetch"] = s.super_at_release ? "release" : "demand";
    j["remote_peers"] = s.remote_peers;
    j["remote_supers"] = s.remote_supers;
    if (s.level == sim::Level::Segment) {
        j["max_peers"] = s.max_peers;
        j["lookup_seconds"] = s.lookup_seconds;
        j["delay_local_ms"] = s.delay_local_ms;
        j["delay_remote_ms"] = s.delay_remote_ms;
        j["conn_buffer_kib"] = s.conn_buffer_kib;
        j["request_timeout_ms"] = s.download.request_timeout;
        j["max_requests_per_peer"] = s.download.max_requests_per_peer;
        j["endgame_after_ms"] = s.download.endgame_after;
        j["busy_backoff_ms"] = s.download.busy_backoff;
        j["local_far_delay_ms"] = s.download.local_far_delay;
        j["superseed_reserve_ms"] = s.superseed_reserve;
        j["peer_pace_ms"] = s.peer_pace;
        j["origin_reserve_ms"] = s.origin_reserve;
        j["coordinate_imports"] = s.coordinate_imports;
        j["import_stall_ms"] = s.import_stall;
    }
    j["bin_minutes"] = s.bin_minutes;
    auto in = sim::theory_input(s);
    j["rho"] = sim::rho(in);
    return j;
}

nlohmann::json run_json(const sim::RunResult& r, double wall) {
    nlohmann::json j;
    j["devices"] = r.devices;
    j["supers"] = r.supers;
    j["completed"] = r.completed;
    j["patch_bytes"] = r.patch_bytes;
    j["source_bytes"] = r.source_bytes;
    j["source_bytes_client_server_equivalent"] = r.source_bytes_client_server_equivalent;
    j["source_fraction"] = r.source_fraction();
    j["imports_total"] = r.imports_total();
    j["delivered_bytes"] = r.delivered_bytes;
    j["wasted_bytes"] = r.wasted_bytes;
    nlohmann::json by;
    for (int c = 0; c < core::kSourceClasses; ++c)
        by[std::string(core::to_string(static_cast<core::SourceClass>(c)))] = r.bytes_by_class[c];
    j["bytes_by_class"] = by;
    j["completion_seconds"] = {{"p50", r.completion_p50}, {"p90", r.completion_p90}, {"p99", r.completion_p99}, {"max", r.completion_max}};
    j["events"] = r.events;
    j["simulated_seconds"] = r.end_seconds;
    if (r.level == sim::Level::Segment)
        j["core"] = {{"requests", r.requests}, {"busy", r.busy}, {"cancels", r.cancels}, {"timeouts", r.timeouts}};
    j["seconds_wall"] = wall;
    return j;
}

Status write_text(const std::string& path, const std::string& text) {
    return node::write_file_atomic(path, as_bytes(text));
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Which run the Figure-15 outputs describe: p2p-locality if it ran, else the first.
std::size_t locality_run(const std::vector<sim::RunResult>& runs) {
    for (std::size_t i = 0; i < runs.size(); ++i)
        if (runs[i].model == sim::Model::P2pLocality) return i;
    return 0;
}

// The analogues of Figures 13 and 15.
std::string plot_script(const std::vector<sim::RunResult>& runs, const sim::Scenario& s) {
    std::ostringstream g;
    double patch = static_cast<double>(sim::patch_bytes(s));
    g << "set datafile separator ','\n"
         "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1100,650 } "
         "else { set terminal png size 1100,650 }\n"
         "set key outside right\nset grid\n";
    g << "set output 'source_load.png'\n"
         "set title 'Load on the source per "
      << s.bin_minutes << " minutes (copies of the patch), " << sim::to_string(s.arrival) << " arrivals, "
      << s.devices << " devices'\n"
         "set xlabel 'hours since the release'\nset ylabel 'patch copies sent by the origin'\n";
    auto curves = [&] {
        g << "plot ";
        for (std::size_t i = 0; i < runs.size(); ++i)
            g << (i ? ", " : "") << "'source_load.csv' every ::1 using ($1/60):($" << i + 2 << "/" << patch
              << ") with steps lw 2 title '" << sim::to_string(runs[i].model) << "'";
        g << "\n";
    };
    curves();
    g << "set output 'source_load_log.png'\nset logscale y\nset yrange [0.5:*]\n";
    curves();
    g << "unset logscale y\nset yrange [*:*]\n";
    std::size_t fig15 = locality_run(runs);
    // domains.csv: column 3 is the first run's imports; with several runs,
    // column 7 + i is run i's.
    std::size_t col = runs.size() > 1 ? 7 + fig15 : 3;
    g << "set output 'imports.png'\n"
         "set title 'Copies imported from other domains per domain ("
      << sim::to_string(runs[fig15].model) << ", rho = " << sim::rho(sim::theory_input(s))
      << ")'\n"
         "set logscale x\nset xlabel 'domain size N (devices)'\nset ylabel 'imports (patch copies)'\n"
         "plot 'domains.csv' every ::1 using 2:"
      << col
      << " with points pt 7 ps 0.6 title 'simulated', "
         "'imports_by_size.csv' every ::1 using 1:4 with lines lw 2 title 'Theorem 1', "
         "'imports_by_size.csv' every ::1 using 1:5 with lines lw 2 dt 2 title 'N e^{-rho N}', "
         "'imports_by_size.csv' every ::1 using 1:6 with lines lw 2 dt 3 title 'Corollary 1 bound'\n";
    return g.str();
}

int run_sim(const SimArgs& a, const CLI::App& sub) {
    const std::string cmd = "sim";
    if (a.plots != "yes" && a.plots != "no" && a.plots != "auto")
        return fail(cmd, "--plots must be auto, yes or no, not '" + a.plots + "'", kExitUsage);
    auto built = make_scenario(a, sub);
    if (!built) return fail(cmd, built.error(), kExitUsage);  // every problem is a flag value
    auto& [scenario, models] = *built;
    std::error_code ec;
    std::filesystem::create_directories(a.out, ec);
    if (ec) return fail(cmd, "--out: cannot create " + a.out + ": " + ec.message());
    bool plots = a.plots == "yes" || (a.plots == "auto" && have_gnuplot());

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    std::vector<sim::RunResult> runs;
    std::vector<double> walls;
    for (auto m : models) {
        sim::Scenario s = scenario;
        s.model = m;
        auto t = clock::now();
        auto r = sim::run(s);
        if (!r) return fail(cmd, std::string(sim::to_string(m)) + ": " + r.error());
        walls.push_back(std::chrono::duration<double>(clock::now() - t).count());
        std::fprintf(stderr, "sim: %s: %.2f s wall, %llu events\n", std::string(sim::to_string(m)).c_str(), walls.back(),
                     static_cast<unsigned long long>(r->events));
        runs.push_back(std::move(*r));
    }
    double wall = std::chrono::duration<double>(clock::now() - t0).count();
    auto rss = peak_rss_bytes();

    const auto& first = runs.front();
    nlohmann::json j;
    j["model"] = std::string(sim::to_string(first.model));
    j["devices"] = first.devices;
    j["source_bytes"] = first.source_bytes;
    j["source_bytes_client_server_equivalent"] = first.source_bytes_client_server_equivalent;
    j["seconds_wall"] = wall;
    j["peak_rss_bytes"] = rss;
    j["scenario"] = scenario_json(scenario);
    nlohmann::json per;
    for (std::size_t i = 0; i < runs.size(); ++i) per[std::string(sim::to_string(runs[i].model))] = run_json(runs[i], walls[i]);
    j["models"] = per;

    std::string table = sim::summary_table(runs);
    auto dir = std::filesystem::path(a.out);
    for (auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
             {"summary.json", j.dump(2) + "\n"},
             {"domains.csv", sim::domains_csv(runs, scenario)},
             {"imports_by_size.csv", sim::imports_by_size_csv(runs[locality_run(runs)], scenario)},
             {"source_load.csv", sim::source_load_csv(runs)},
             {"summary.txt", table}}) {
        if (auto st = write_text((dir / name).string(), text); !st) return fail(cmd, st.error());
    }
    if (scenario.trace)
        for (auto& r : runs) {
            std::string m(sim::to_string(r.model));
            for (auto& [name, text] : {std::pair{"trace_uploads_" + m + ".csv", &r.trace_uploads},
                                       std::pair{"trace_segments_" + m + ".csv", &r.trace_segments}})
                if (auto st = write_text((dir / name).string(), *text); !st) return fail(cmd, st.error());
        }
    std::fputs(table.c_str(), stdout);
    std::printf("wall %.2f s, peak RSS %.1f MiB, output in %s\n", wall, static_cast<double>(rss) / (1 << 20), a.out.c_str());
    if (plots) {
        if (auto st = write_text((dir / "plots.gp").string(), plot_script(runs, scenario)); !st) return fail(cmd, st.error());
        std::string run = "cd " + quoted(a.out) + " && gnuplot plots.gp";
        if (std::system(run.c_str()) != 0) {
            if (a.plots == "yes") return fail(cmd, "gnuplot failed on " + (dir / "plots.gp").string());
            std::fprintf(stderr, "patchswarm sim: gnuplot failed; the CSV files are written\n");
        }
    }
    return 0;
}

}  // namespace

void add_sim_commands(CLI::App& app, Commands& out) {
    auto* sub = app.add_subcommand("sim", "Simulate the delivery of a patch to a population of devices");
    auto a = std::make_shared<SimArgs>();
    auto& d = a->defaults;
    sub->add_option("--model", a->models,
                    "client-server | caching | p2p-random | p2p-locality | p2p-stay | p2p-full | all "
                    "(comma-separated: several models over the same population)")
        ->delimiter(',');
    sub->add_option("--level", a->level, "download (one flow per download) | segment (core::Download per device)");
    sub->add_option("--devices", a->devices, "Number of devices");
    sub->add_option("--domains", a->domains, "Number of domains");
    sub->add_option("--domain-sizes", a->domain_sizes_file, "File with one domain size per line (instead of drawing them)");
    sub->add_option("--domain-dist", a->domain_dist, "pareto | equal: how domain sizes are drawn");
    sub->add_option("--domain-alpha", a->domain_alpha, "Tail index of the Pareto domain sizes (smaller = heavier tail)");
    sub->add_option("--arrival", a->arrival, "poll (uniform over one polling period) | poll-exp | flash");
    sub->add_option("--poll-hours", a->poll_hours, "Polling interval of always-on devices (hours)");
    sub->add_option("--flash-minutes", a->flash_minutes, "Mean request time of a flash crowd (minutes)");
    sub->add_option("--online-minutes", a->online_minutes, "Mean time a device stays online after asking (B)");
    sub->add_option("--online-dist", a->online_dist, "fixed | exp: distribution of the online time");
    sub->add_option("--patch-mib", a->patch_mib, "Patch size in MiB (1 MiB segments)");
    sub->add_option("--seed", a->seed, "Random seed: the same seed gives the same result");
    sub->add_option("--out", a->out, "Output folder")->required();
    sub->add_option("--device-down-mbps", d.device.down_mbps, "Device download capacity (Mbit/s)");
    sub->add_option("--device-up-mbps", d.device.up_mbps, "Device upload capacity (Mbit/s)");
    sub->add_option("--device-slots", d.device.slots, "Peers a device serves at once (0 = unlimited)");
    sub->add_option("--device-buffer-kib", d.device.buffer_kib, "segment level: a device's upload buffer (0 = unlimited)");
    sub->add_option("--super-down-mbps", d.super.down_mbps, "Super-node download capacity (Mbit/s)");
    sub->add_option("--super-up-mbps", d.super.up_mbps, "Super-node upload capacity (Mbit/s, 0 = unlimited)");
    sub->add_option("--super-slots", d.super.slots, "Peers a super-node serves at once (0 = unlimited)");
    sub->add_option("--super-buffer-kib", d.super.buffer_kib, "segment level: a super-node's upload buffer (0 = unlimited)");
    sub->add_option("--origin-up-mbps", d.origin.up_mbps, "Origin upload capacity (Mbit/s, 0 = unlimited)");
    sub->add_option("--origin-slots", d.origin.slots, "Peers the origin serves at once (0 = unlimited)");
    sub->add_option("--origin-buffer-kib", d.origin.buffer_kib, "segment level: the origin's upload buffer (0 = unlimited)");
    sub->add_option("--stay-factor", d.stay_factor, "p2p-stay: stay online this many download times after completing");
    sub->add_option("--seed-max-hours", d.seed_max_hours, "p2p-full: stop seeding after this long anyway");
    sub->add_option("--cache-min-devices", d.cache_min_devices, "caching: a cache in each domain of at least this many devices");
    sub->add_flag("--supers", d.supers, "P2P models: an always-on super-node in every domain");
    sub->add_option("--super-fetch", a->super_fetch, "release | demand: super-nodes fetch at the release or on first request");
    sub->add_option("--remote-peers", a->remote_peers, "yes | no: devices may take from other domains' devices");
    sub->add_option("--remote-supers", a->remote_supers, "yes | no: hosts may take from other domains' super-nodes");
    sub->add_option("--max-peers", d.max_peers, "segment level: holders a downloader knows at once");
    sub->add_option("--lookup-seconds", d.lookup_seconds, "segment level: interval between holder lookups");
    sub->add_option("--delay-local-ms", d.delay_local_ms, "segment level: one-way delay inside a domain");
    sub->add_option("--delay-remote-ms", d.delay_remote_ms, "segment level: one-way delay between domains and to the origin");
    sub->add_option("--conn-buffer-kib", d.conn_buffer_kib, "segment level: bytes queued on a connection before it is congested");
    sub->add_option("--request-timeout-ms", a->request_timeout_ms, "segment level: core::DownloadConfig::request_timeout");
    sub->add_option("--max-requests-per-peer", a->max_requests_per_peer, "segment level: core::DownloadConfig::max_requests_per_peer");
    sub->add_option("--endgame-after-ms", a->endgame_after_ms, "segment level: core::DownloadConfig::endgame_after");
    sub->add_option("--busy-backoff-ms", a->busy_backoff_ms, "segment level: core::DownloadConfig::busy_backoff");
    sub->add_option("--local-far-delay-ms", a->local_far_delay_ms, "segment level: core::DownloadConfig::local_far_delay");
    sub->add_option("--superseed-reserve-ms", d.superseed_reserve, "segment level: core::EngineConfig::superseed_reserve");
    sub->add_option("--peer-pace-ms", d.peer_pace, "segment level: core::EngineConfig::peer_pace (0 = off)");
    sub->add_option("--trace", a->trace,
                    "yes | no: segment level, write trace_uploads_<model>.csv (bytes each host class sent per second) "
                    "and trace_segments_<model>.csv (every stored segment); for small runs (bench/sim_trace.py reads them)");
    sub->add_option("--origin-reserve-ms", d.origin_reserve, "segment level: core::EngineConfig::origin_reserve");
    sub->add_option("--coordinate-imports", a->coordinate_imports, "segment level: yes | no, core::EngineConfig::coordinate_imports");
    sub->add_option("--import-stall-ms", d.import_stall, "segment level: core::EngineConfig::import_stall");
    sub->add_option("--bin-minutes", d.bin_minutes, "Width of the source-load bins (minutes)");
    sub->add_option("--plots", a->plots, "auto | yes | no: PNG plots with gnuplot");
    out.emplace_back(sub, [a, sub] { return run_sim(*a, *sub); });
}

}  // namespace ps::cli
