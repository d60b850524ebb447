// Fuzz target: the daemon's monthly upload counter (DATA/upload-month,
// core/device_policy.hpp), bytes read from disk at start. Invariants: no
// crash or sanitizer report; an accepted file is within the limits and
// formats back to text that parses to the same count.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/device_policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace c = ps::core;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto m = c::parse_upload_month(text);
    if (!m) {
        if (m.error().rfind("upload-month file", 0) != 0) std::abort();  // the reason names what it is about
        return 0;
    }
    if (size > c::kMaxUploadMonthFile || m->month < 1 || m->month > 12 || m->year < 2000 || m->year > 9999) std::abort();
    auto again = c::parse_upload_month(c::format_upload_month(*m));
    if (!again || !(*again == *m)) std::abort();
    return 0;
}
