// Fuzz target: the daemon's job file (node/job_file.hpp), bytes read from
// disk at start. Invariants: no crash or sanitizer report; an accepted file
// is within the limits, has a known state, and formats back to text that
// parses to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/job_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace n = ps::node;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto f = n::parse_job_file(text);
    if (!f) {
        if (f.error().rfind("job file", 0) != 0) std::abort();  // the reason names what it is about
        return 0;
    }
    if (size > n::kMaxJobFile || f->out.size() > n::kMaxJobValue || f->hook.size() > n::kMaxJobValue) std::abort();
    if (f->state != "downloading" && f->state != "paused" && f->state != "complete" && f->state != "failed") std::abort();
    auto text2 = n::format_job_file(*f);
    if (!text2) std::abort();
    auto again = n::parse_job_file(*text2);
    if (!again || !(*again == *f)) std::abort();
    return 0;
}
