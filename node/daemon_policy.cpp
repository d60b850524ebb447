// Device policies on a running node (core/device_policy.hpp decides): the
// vendor feeds battery level, power and metered state through the control
// socket (`patchswarm policy`), the node counts what it uploads per calendar
// month (DATA/upload-month, kept across restarts), and once a second the
// verdict is applied through the engine's upload gate and rate limits. New
// downloads are refused below the free-disk minimum. docs/daemon.md.
#include <nlohmann/json.hpp>

#include <sys/statvfs.h>

#include <ctime>

#include "node/daemon.hpp"
#include "node/daemon_util.hpp"
#include "node/keys.hpp"
#include "node/log.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

using json = nlohmann::json;
using namespace daemon_util;

namespace {

constexpr int kMonthSaveEverySeconds = 10;

std::tm local_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    return tm;
}

Result<bool> yes_no(const std::string& key, const std::string& v) {
    if (v == "yes" || v == "on" || v == "true") return true;
    if (v == "no" || v == "off" || v == "false") return false;
    return err(key + ": '" + v.substr(0, 32) + "' is not yes or no");
}

}  // namespace

std::string Daemon::month_path() const { return cfg_.data_dir + "/upload-month"; }

void Daemon::start_policy() {
    if (auto bytes = read_file_limited(month_path(), core::kMaxUploadMonthFile); bytes) {
        auto m = core::parse_upload_month(std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
        if (m) month_ = *m;
        else log::warn("upload_month_reset", {{"file", month_path()}, {"reason", m.error()}});
    }
    policy_timer_ = std::make_unique<transfer::Timer>(loop_);
    policy_timer_->start(1000, 1000, [this] { policy_tick(); });
    apply_policy();
}

// Counts the month's uploads, saves them now and then, and applies the verdict.
void Daemon::policy_tick() {
    if (stopping_ || !node_) return;
    std::uint64_t total = 0;
    for (auto& w : node_->status().swarms) total += w.stats.bytes_uploaded;
    std::uint64_t delta = total > month_sampled_ ? total - month_sampled_ : 0;  // a removed patch lowers the sum
    month_sampled_ = total;
    auto tm = local_now();
    auto before = month_;
    month_ = core::count_upload(month_, tm.tm_year + 1900, tm.tm_mon + 1, delta);
    if (!(month_ == before)) month_dirty_ = true;
    if (month_dirty_ && ++month_save_tick_ >= kMonthSaveEverySeconds) save_month();
    apply_policy();
}

void Daemon::save_month() {
    month_save_tick_ = 0;
    month_dirty_ = false;
    if (auto st = write_file_atomic(month_path(), as_bytes(core::format_upload_month(month_)), 0644); !st)
        log::warn("upload_month_not_saved", {{"reason", st.error()}});
}

core::DeviceState Daemon::device_state() const {
    core::DeviceState s;
    s.battery = vendor_.battery;
    s.on_ac = vendor_.on_ac;
    s.metered = vendor_.metered.value_or(cfg_.metered);
    s.month_uploaded = month_.bytes;
    auto tm = local_now();
    // A count from an earlier month is no longer this month's.
    if (month_.year != tm.tm_year + 1900 || month_.month != tm.tm_mon + 1) s.month_uploaded = 0;
    s.local = {tm.tm_wday, tm.tm_hour};
    return s;
}

void Daemon::apply_policy() {
    if (!node_) return;
    auto v = core::evaluate_policy(cfg_.policy, device_state(), cfg_.upload_limit, cfg_.download_limit);
    bool first = !policy_applied_, changed = v.refusal != verdict_.refusal;
    if (changed && !v.may_upload()) ++refusals_[static_cast<int>(v.refusal)];
    if (changed) log::info(v.may_upload() ? "uploads_allowed" : "uploads_refused", {{"policy", core::to_string(v.refusal)}});
    if (first || changed) node_->set_uploads_refused(!v.may_upload());
    if (first || v.upload_rate != verdict_.upload_rate || v.download_rate != verdict_.download_rate)
        node_->set_rate_limits(v.upload_rate, v.download_rate);
    verdict_ = v;
    policy_applied_ = true;
}

std::optional<std::string> Daemon::caching_refusal(const VerifiedManifest& vm) {
    struct statvfs fs {};
    if (::statvfs(cfg_.data_dir.c_str(), &fs) != 0) return std::nullopt;  // unknown: the write itself will tell
    std::uint64_t free_disk = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    auto why = core::refuse_caching(cfg_.policy, free_disk, vm.manifest.urgent);
    if (why) {
        ++caching_refused_;
        caching_refused_why_ = vm.manifest.name + " v" + std::to_string(vm.manifest.version) + ": " + *why;
    }
    return why;
}

json Daemon::policy_json() const {
    auto s = device_state();
    const auto& p = cfg_.policy;
    json refusals = json::object();
    for (int r = 1; r < core::kUploadRefusals; ++r) refusals[core::to_string(core::UploadRefusal(r))] = refusals_[r];
    return {{"uploads", verdict_.may_upload() ? "allowed" : "refused"},
            {"refused_because", verdict_.may_upload() ? json(nullptr) : json(core::to_string(verdict_.refusal))},
            {"business_hours", verdict_.business_hours},
            {"upload_limit", verdict_.upload_rate},
            {"download_limit", verdict_.download_rate},
            {"battery", s.battery ? json(*s.battery) : json(nullptr)},
            {"on_ac", s.on_ac},
            {"metered", s.metered},
            {"month_uploaded", s.month_uploaded},
            {"monthly_upload_cap", p.monthly_upload_cap},
            {"min_battery", p.min_battery},
            {"upload_on_metered", p.upload_on_metered},
            {"min_free_disk", p.min_free_disk},
            {"refusals", refusals},
            {"requests_refused", node_ ? node_->uploads_refused_by_policy() : 0},
            {"caching_refused", caching_refused_},
            {"caching_refused_last", caching_refused_why_}};
}

std::string Daemon::cmd_policy(const std::string* battery, const std::string* on_ac, const std::string* metered) {
    if (battery) {
        if (*battery == "unknown") {
            vendor_.battery.reset();
        } else {
            if (battery->empty() || battery->size() > 3 || battery->find_first_not_of("0123456789") != std::string::npos ||
                std::stoi(*battery) > 100)
                return control::error_reply("battery: '" + battery->substr(0, 32) + "' is not a percentage 0..100 or unknown");
            vendor_.battery = std::stoi(*battery);
        }
    }
    if (on_ac) {
        auto v = yes_no("on_ac", *on_ac);
        if (!v) return control::error_reply(v.error());
        vendor_.on_ac = *v;
    }
    if (metered) {
        auto v = yes_no("metered", *metered);
        if (!v) return control::error_reply(v.error());
        vendor_.metered = *v;
    }
    if (battery || on_ac || metered) apply_policy();
    return ok_reply({{"policy", policy_json()}});
}

}  // namespace ps::node
