#include "transfer/line_framing.hpp"

namespace ps::transfer {

LineCut next_line(std::string_view buf, std::size_t start, std::size_t max_line) {
    LineCut cut;
    if (start > buf.size()) return cut;
    auto nl = buf.find('\n', start);
    if (nl == std::string_view::npos) {
        if (buf.size() - start > max_line) cut.kind = LineCut::Kind::TooLong;
        return cut;
    }
    if (nl - start > max_line) {
        cut.kind = LineCut::Kind::TooLong;
        return cut;
    }
    cut.kind = LineCut::Kind::Line;
    cut.line = buf.substr(start, nl - start);
    if (!cut.line.empty() && cut.line.back() == '\r') cut.line.remove_suffix(1);
    cut.next = nl + 1;
    return cut;
}

}  // namespace ps::transfer
