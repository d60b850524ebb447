#include "node/progress.hpp"

#include <algorithm>
#include <cmath>

namespace ps::node {

void RateWindow::add(std::uint64_t now_ms, std::uint64_t bytes) {
    if (!samples_.empty() && now_ms < samples_.back().first) now_ms = samples_.back().first;
    samples_.emplace_back(now_ms, bytes);
    // Keep one sample at or before the window's start, so the window is full.
    while (samples_.size() > 2 && samples_[1].first + window_ms_ <= now_ms) samples_.pop_front();
}

double RateWindow::rate() const {
    if (samples_.size() < 2) return 0;
    auto [t0, b0] = samples_.front();
    auto [t1, b1] = samples_.back();
    if (t1 <= t0 || b1 <= b0) return 0;
    return double(b1 - b0) * 1000.0 / double(t1 - t0);
}

std::optional<double> eta_seconds(std::uint64_t held, std::uint64_t total, double rate) {
    if (held >= total) return 0.0;
    if (!(rate >= 1.0)) return std::nullopt;  // also NaN
    double s = double(total - held) / rate;
    if (s > 100.0 * 86'400) return std::nullopt;
    return s;
}

std::string format_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!(b > 0)) b = 0;
    int u = 0;
    while (b >= 1024 && u < 5) {
        b /= 1024;
        ++u;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
    return buf;
}

std::string format_eta(std::optional<double> seconds) {
    if (!seconds) return "-";
    auto s = static_cast<long>(std::ceil(*seconds));
    char buf[40];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

double fraction(std::uint64_t held, std::uint64_t total) {
    if (total == 0 || held >= total) return 1.0;
    return double(held) / double(total);
}

namespace {

// The percentage shown: never 100.0 before the last byte.
double shown_percent(std::uint64_t held, std::uint64_t total) {
    double p = std::floor(fraction(held, total) * 1000.0) / 10.0;
    return held < total ? std::min(p, 99.9) : 100.0;
}

}  // namespace

std::string progress_bar(const ProgressView& v, int width) {
    width = std::max(width, 1);
    auto filled = static_cast<int>(fraction(v.held, v.total) * width);
    if (v.held < v.total) filled = std::min(filled, width - 1);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(static_cast<std::size_t>(width), '-');
    char pct[16];
    std::snprintf(pct, sizeof pct, "%5.1f%%", shown_percent(v.held, v.total));
    return "[" + bar + "] " + pct + "  " + format_bytes(double(v.held)) + "/" + format_bytes(double(v.total)) + "  " +
           format_bytes(v.rate) + "/s  ETA " + format_eta(eta_seconds(v.held, v.total, v.rate)) + "  " + v.state;
}

std::string progress_line(const ProgressView& v) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.1f%%", shown_percent(v.held, v.total));
    return std::string("progress ") + pct + " " + format_bytes(double(v.held)) + " of " + format_bytes(double(v.total)) +
           " rate " + format_bytes(v.rate) + "/s eta " + format_eta(eta_seconds(v.held, v.total, v.rate)) + " state " +
           v.state;
}

bool PlainPacer::due(std::uint64_t now_ms, double fraction_done, const std::string& state) {
    int step = step_ > 0 ? static_cast<int>(fraction_done * 100.0 / step_) : 0;
    bool first = !last_ms_;
    bool is_due = first || state != last_state_ || step > last_step_ || now_ms >= *last_ms_ + every_ms_;
    if (is_due) {
        last_ms_ = now_ms;
        last_step_ = std::max(last_step_, step);
        last_state_ = state;
    }
    return is_due;
}

void ProgressPrinter::update(std::uint64_t now_ms, std::uint64_t held, std::uint64_t total, const std::string& state) {
    rate_.add(now_ms, held);
    last_ = ProgressView{held, total, rate_.rate(), state};
    pending_ = true;
    if (terminal_) {
        if (drawn_ms_ && now_ms < *drawn_ms_ + redraw_ms_ && held < total) return;
        drawn_ms_ = now_ms;
        pending_ = false;
        auto bar = progress_bar(last_);
        if (bar == drawn_) return;
        drawn_ = std::move(bar);
        std::fprintf(out_, "\r%s\033[K", drawn_.c_str());
        open_line_ = true;
    } else {
        if (!pacer_.due(now_ms, fraction(held, total), state)) return;
        std::fprintf(out_, "%s\n", progress_line(last_).c_str());
    }
    pending_ = false;
    std::fflush(out_);
}

void ProgressPrinter::finish() {
    if (pending_) {
        if (terminal_) std::fprintf(out_, "\r%s\033[K", progress_bar(last_).c_str());  // a sample the pace skipped
        else std::fprintf(out_, "%s\n", progress_line(last_).c_str());
        open_line_ = open_line_ || terminal_;
        pending_ = false;
    }
    if (open_line_) std::fprintf(out_, "\n");
    open_line_ = false;
    std::fflush(out_);
}

}  // namespace ps::node
