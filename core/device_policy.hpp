// Device policies, as a device vendor sets them (like Windows Delivery
// Optimization's): when a device may upload, how fast it may go within
// business hours, and when it may start caching a new patch. The vendor
// feeds the device's state (battery, power, metered link) and the driver the
// rest (bytes uploaded this calendar month, local time, free disk); these
// pure functions decide. No clock, no I/O: the daemon (node/daemon_policy.cpp)
// samples and applies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace ps::core {

struct DevicePolicy {
    int min_battery = 0;                   // percent: no upload on battery below it (0: off)
    bool upload_on_metered = false;        // false: no upload while the link is metered
    std::uint64_t monthly_upload_cap = 0;  // bytes per calendar month (0: none)
    // Business hours: local [hours_from, hours_to) on the days in `days` (bit
    // d = weekday d, 0 = Sunday); hours_from == hours_to: none; 0-24 all day;
    // from > to runs over midnight. Within them
    // the rates below apply (bytes/s, 0: no extra limit).
    int hours_from = 0, hours_to = 0;
    std::uint8_t days = 0b0111110;  // Monday..Friday
    std::uint64_t hours_upload_rate = 0, hours_download_rate = 0;
    std::uint64_t min_free_disk = 0;  // bytes free needed to start a new download (0: off)
};

struct LocalTime {
    int weekday = 1;  // 0 = Sunday
    int hour = 0;     // 0..23
};

struct DeviceState {
    std::optional<int> battery;  // percent; empty: unknown (treated as no battery)
    bool on_ac = true;
    bool metered = false;
    std::uint64_t month_uploaded = 0;  // bytes this calendar month
    LocalTime local;
};

// Why uploads are refused now; the first that applies, in this order.
enum class UploadRefusal : std::uint8_t { None = 0, Battery, Metered, MonthlyCap };
inline constexpr int kUploadRefusals = 4;
const char* to_string(UploadRefusal);

struct PolicyVerdict {
    UploadRefusal refusal = UploadRefusal::None;
    bool business_hours = false;
    std::uint64_t upload_rate = 0;    // the limit to apply: the lower nonzero of configured and policy
    std::uint64_t download_rate = 0;
    bool may_upload() const { return refusal == UploadRefusal::None; }
};

// `upload_limit` / `download_limit`: the node's configured limits (0: none).
PolicyVerdict evaluate_policy(const DevicePolicy&, const DeviceState&, std::uint64_t upload_limit,
                              std::uint64_t download_limit);

bool in_business_hours(const DevicePolicy&, const LocalTime&);

// Whether a new download may start with `free_disk` bytes free on the store's
// file system: empty if so, else why not. The minimum holds for every new
// download (a super-node's prefetch, a device's automatic fetch, a user's
// add) except an urgent patch's, which must not wait for a cleanup.
std::optional<std::string> refuse_caching(const DevicePolicy&, std::uint64_t free_disk, bool urgent);

// Settings as text (config keys): "8-18" (local hours, from-to, to exclusive);
// "mon-fri", "sat,sun" or "all" (days).
Status parse_business_hours(std::string_view text, DevicePolicy& out);
Status parse_business_days(std::string_view text, DevicePolicy& out);

// The bytes uploaded in one calendar month, kept across restarts in
// DATA/upload-month: "patchswarm-upload-month-v1\nYYYY-MM BYTES\n".
struct UploadMonth {
    int year = 0, month = 0;  // month 1..12; 0/0: nothing counted yet
    std::uint64_t bytes = 0;
    bool operator==(const UploadMonth&) const = default;
};
inline constexpr std::size_t kMaxUploadMonthFile = 128;
// `delta` more bytes went out in (year, month): a new month starts from zero.
UploadMonth count_upload(UploadMonth m, int year, int month, std::uint64_t delta);
std::string format_upload_month(const UploadMonth&);
// Refused naming the problem: over the size limit, a wrong header, a month
// outside 1..12 or a year outside 2000..9999, a count that is not a number.
Result<UploadMonth> parse_upload_month(std::string_view text);

}  // namespace ps::core
