// Fuzz target: the control socket's line framing (transfer/line_framing.hpp),
// bytes from any local client. The first byte picks the line limit (1-256),
// the rest is the stream. Invariants: no crash or sanitizer report; every line
// is within the limit, holds no newline, and is what came before it less
// one '\r'; cutting the stream in lines never
// goes backwards; TooLong only when no newline comes within the limit, and
// NeedMore only when none comes at all.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "transfer/line_framing.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using ps::transfer::LineCut;
    if (size == 0) return 0;
    std::size_t max_line = std::size_t{data[0]} + 1;
    std::string_view buf(reinterpret_cast<const char*>(data + 1), size - 1);
    std::size_t start = 0;
    for (;;) {
        auto cut = ps::transfer::next_line(buf, start, max_line);
        auto nl = buf.find('\n', start);
        if (cut.kind == LineCut::Kind::NeedMore) {
            if (nl != std::string_view::npos || buf.size() - start > max_line) std::abort();
            break;
        }
        if (cut.kind == LineCut::Kind::TooLong) {
            std::size_t upto = nl == std::string_view::npos ? buf.size() : nl;
            if (upto - start <= max_line) std::abort();
            break;
        }
        if (cut.next <= start || cut.next != nl + 1 || cut.line.size() > max_line) std::abort();
        if (cut.line.find('\n') != std::string_view::npos) std::abort();
        // The line is what came before the newline, less one '\r' there.
        bool cr = cut.line.size() + 1 == nl - start && buf[nl - 1] == '\r';
        if (cut.line.size() != nl - start && !cr) std::abort();
        if (cut.line.data() != buf.data() + start) std::abort();
        start = cut.next;
    }
    return 0;
}
