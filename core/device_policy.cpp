#include "core/device_policy.hpp"

#include <array>
#include <cstdio>

namespace ps::core {

const char* to_string(UploadRefusal r) {
    switch (r) {
        case UploadRefusal::None: return "none";
        case UploadRefusal::Battery: return "battery";
        case UploadRefusal::Metered: return "metered";
        case UploadRefusal::MonthlyCap: return "monthly_cap";
    }
    return "?";
}

bool in_business_hours(const DevicePolicy& p, const LocalTime& t) {
    if (p.hours_from == p.hours_to || t.weekday < 0 || t.weekday > 6) return false;
    if (!(p.days >> t.weekday & 1)) return false;
    // A window over midnight (22..6) counts from its start day.
    if (p.hours_from < p.hours_to) return t.hour >= p.hours_from && t.hour < p.hours_to;
    return t.hour >= p.hours_from || t.hour < p.hours_to;
}

namespace {

std::uint64_t lower_limit(std::uint64_t a, std::uint64_t b) {
    if (!a) return b;
    if (!b) return a;
    return a < b ? a : b;
}

}  // namespace

PolicyVerdict evaluate_policy(const DevicePolicy& p, const DeviceState& s, std::uint64_t upload_limit,
                              std::uint64_t download_limit) {
    PolicyVerdict v;
    if (p.min_battery > 0 && !s.on_ac && s.battery && *s.battery < p.min_battery)
        v.refusal = UploadRefusal::Battery;
    else if (s.metered && !p.upload_on_metered)
        v.refusal = UploadRefusal::Metered;
    else if (p.monthly_upload_cap && s.month_uploaded >= p.monthly_upload_cap)
        v.refusal = UploadRefusal::MonthlyCap;
    v.business_hours = in_business_hours(p, s.local);
    v.upload_rate = v.business_hours ? lower_limit(upload_limit, p.hours_upload_rate) : upload_limit;
    v.download_rate = v.business_hours ? lower_limit(download_limit, p.hours_download_rate) : download_limit;
    return v;
}

std::optional<std::string> refuse_caching(const DevicePolicy& p, std::uint64_t free_disk, bool urgent) {
    if (urgent || !p.min_free_disk || free_disk >= p.min_free_disk) return std::nullopt;
    return "the store's file system has " + std::to_string(free_disk) + " bytes free, under the policy's minimum of " +
           std::to_string(p.min_free_disk) + " (policy.min_free_disk)";
}

namespace {

constexpr std::array<std::string_view, 7> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

int day_index(std::string_view d) {
    for (std::size_t i = 0; i < kDays.size(); ++i)
        if (kDays[i] == d) return static_cast<int>(i);
    return -1;
}

std::optional<std::uint64_t> number(std::string_view t, std::size_t max_digits) {
    if (t.empty() || t.size() > max_digits) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : t) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

}  // namespace

Status parse_business_hours(std::string_view text, DevicePolicy& out) {
    auto dash = text.find('-');
    auto from = number(text.substr(0, dash), 2);
    auto to = dash == std::string_view::npos ? std::nullopt : number(text.substr(dash + 1), 2);
    if (!from || !to || *from > 23 || *to > 24)
        return err("'" + std::string(text.substr(0, 32)) + "' is not local hours FROM-TO such as 8-18 (0..24)");
    out.hours_from = static_cast<int>(*from);
    out.hours_to = static_cast<int>(*to);  // 24: until midnight
    return {};
}

Status parse_business_days(std::string_view text, DevicePolicy& out) {
    auto bad = [whole = text] {
        return err("'" + std::string(whole.substr(0, 32)) + "' is not days such as mon-fri, sat,sun or all");
    };
    if (text == "all") {
        out.days = 0x7f;
        return {};
    }
    std::uint8_t days = 0;
    while (!text.empty()) {
        auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        auto dash = item.find('-');
        int a = day_index(item.substr(0, dash));
        int b = dash == std::string_view::npos ? a : day_index(item.substr(dash + 1));
        if (a < 0 || b < 0 || (comma != std::string_view::npos && text.empty())) return bad();
        for (int d = a;; d = (d + 1) % 7) {
            days |= static_cast<std::uint8_t>(1u << d);
            if (d == b) break;
        }
    }
    if (!days) return bad();
    out.days = days;
    return {};
}

UploadMonth count_upload(UploadMonth m, int year, int month, std::uint64_t delta) {
    if (m.year != year || m.month != month) m = UploadMonth{year, month, 0};
    m.bytes += delta;
    return m;
}

std::string format_upload_month(const UploadMonth& m) {
    char month[32];
    std::snprintf(month, sizeof month, "%04d-%02d", m.year, m.month);
    return "patchswarm-upload-month-v1\n" + std::string(month) + " " + std::to_string(m.bytes) + "\n";
}

Result<UploadMonth> parse_upload_month(std::string_view text) {
    if (text.size() > kMaxUploadMonthFile)
        return err("upload-month file: " + std::to_string(text.size()) + " bytes, over the limit of " +
                   std::to_string(kMaxUploadMonthFile));
    constexpr std::string_view header = "patchswarm-upload-month-v1\n";
    if (text.substr(0, header.size()) != header)
        return err("upload-month file: the first line is not patchswarm-upload-month-v1");
    text.remove_prefix(header.size());
    if (text.empty() || text.back() != '\n') return err("upload-month file: the last line does not end");
    text.remove_suffix(1);
    // YYYY-MM BYTES
    auto bad = [&] { return err("upload-month file: '" + std::string(text.substr(0, 40)) + "' is not YYYY-MM BYTES"); };
    if (text.size() < 9 || text[4] != '-' || text[7] != ' ') return bad();
    auto year = number(text.substr(0, 4), 4);
    auto month = number(text.substr(5, 2), 2);
    auto bytes = number(text.substr(8), 20);
    if (!year || !month || !bytes || *year < 2000 || *month < 1 || *month > 12) return bad();
    if (text.size() - 8 == 20 && text.substr(8) > "18446744073709551615")
        return err("upload-month file: the byte count is over 2^64");
    return UploadMonth{static_cast<int>(*year), static_cast<int>(*month), *bytes};
}

}  // namespace ps::core
