// Fuzz target: the metrics endpoint's request head parser (transfer/http_server.hpp).
// Invariants: no crash; an accepted request is a GET of a path starting with '/'
// of bounded length without spaces or control characters; errors are 400 or 405.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "transfer/http_server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view head(reinterpret_cast<const char*>(data), size);
    auto r = ps::transfer::parse_request_head(head);
    if (auto* e = std::get_if<ps::transfer::HttpError>(&r)) {
        if (e->status != 400 && e->status != 405) std::abort();
        return 0;
    }
    auto& ok = std::get<ps::transfer::HttpRequestLine>(r);
    if (ok.method != "GET" || ok.path.empty() || ok.path[0] != '/' || ok.path.size() > 2048) std::abort();
    for (unsigned char ch : ok.path)
        if (ch <= ' ' || ch >= 0x7f || ch == '?') std::abort();
    return 0;
}
