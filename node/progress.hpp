// A download's progress as `patchswarm fetch` shows it (one-shot and
// --daemon): the rate over a sliding window of bytes held, the time left, a
// bar redrawn in place on a terminal, plain lines otherwise.
//
// Everything but ProgressPrinter is pure (no clock, no I/O): the caller passes
// the time and the bytes held, so tests drive it with any figures.
// Rates and times left are in bytes, never segments, so they are right for any
// segment size.
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace ps::node {

// Bytes per second over the last `window_ms` of samples of the bytes held.
class RateWindow {
public:
    explicit RateWindow(std::uint64_t window_ms = 5'000) : window_ms_(window_ms) {}
    // The bytes held at time now_ms (milliseconds, any origin, not decreasing).
    void add(std::uint64_t now_ms, std::uint64_t bytes);
    // 0 until two samples at different times; never negative.
    double rate() const;

private:
    std::uint64_t window_ms_;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> samples_;  // (time, bytes)
};

// Seconds left for `total - held` bytes at `rate` bytes/s: 0 when complete,
// nothing when the rate is too small to say (under 1 byte/s) or the answer
// would exceed 100 days.
std::optional<double> eta_seconds(std::uint64_t held, std::uint64_t total, double rate);

// "0 B", "1023 B", "1.5 KiB", "64.0 MiB", ... up to PiB.
std::string format_bytes(double bytes);
// "0:07", "12:34", "1:02:03"; "-" for nothing.
std::string format_eta(std::optional<double> seconds);

struct ProgressView {
    std::uint64_t held = 0;   // bytes
    std::uint64_t total = 0;  // bytes
    double rate = 0;          // bytes/s
    std::string state;        // "downloading", "paused", "complete", ...
};
// Fraction done, 0..1 (an empty patch is done).
double fraction(std::uint64_t held, std::uint64_t total);
// One terminal line (no \r, no newline), `width` characters of bar:
// "[###########-------------------]  37.5%  24.0 MiB/64.0 MiB  8.0 MiB/s  ETA 0:05  downloading"
std::string progress_bar(const ProgressView& v, int width = 30);
// One plain line: "progress 37.5% 24.0 MiB of 64.0 MiB rate 8.0 MiB/s eta 0:05 state downloading"
std::string progress_line(const ProgressView& v);

// When plain output writes a line: the first sample, each 10% step crossed,
// every `every_ms` otherwise, and any change of state.
class PlainPacer {
public:
    explicit PlainPacer(std::uint64_t every_ms = 5'000, int step_percent = 10)
        : every_ms_(every_ms), step_(step_percent) {}
    bool due(std::uint64_t now_ms, double fraction_done, const std::string& state);

private:
    std::uint64_t every_ms_;
    int step_;
    std::optional<std::uint64_t> last_ms_;
    int last_step_ = -1;
    std::string last_state_;
};

// The I/O side: samples go in, the bar (redrawn with \r at most every
// redraw_ms) or plain lines come out on `out`.
class ProgressPrinter {
public:
    ProgressPrinter(std::FILE* out, bool terminal, std::uint64_t redraw_ms = 250)
        : out_(out), terminal_(terminal), redraw_ms_(redraw_ms) {}
    void update(std::uint64_t now_ms, std::uint64_t held, std::uint64_t total, const std::string& state);
    // Draws the last sample if it was not, and ends the bar's line (terminal).
    void finish();

private:
    std::FILE* out_;
    bool terminal_;
    std::uint64_t redraw_ms_;
    RateWindow rate_;
    PlainPacer pacer_;
    std::optional<std::uint64_t> drawn_ms_;
    std::string drawn_;  // the bar last drawn: not drawn again unchanged
    ProgressView last_;
    bool pending_ = false, open_line_ = false;
};

}  // namespace ps::node
