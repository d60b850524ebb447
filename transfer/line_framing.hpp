// Line framing of the local control socket: requests are lines ending in
// '\n' (a '\r' before it is dropped), each at most max_line bytes without
// the newline. Split out of LocalServer so that it can be fuzzed on its own.
#pragma once

#include <cstddef>
#include <string_view>

namespace ps::transfer {

struct LineCut {
    enum class Kind {
        Line,      // `line` is the next request; the one after starts at `next`
        NeedMore,  // no newline yet, and still within the limit
        TooLong,   // more than max_line bytes before the newline, or without one
    };
    Kind kind = Kind::NeedMore;
    std::string_view line;  // a view into the buffer, for Line only
    std::size_t next = 0;
};

// The line of `buf` starting at `start` (<= buf.size()).
LineCut next_line(std::string_view buf, std::size_t start, std::size_t max_line);

}  // namespace ps::transfer
