// ps::Result / ps::Status: an error carries a reason for people and, where a
// caller branches on the kind of failure, a code.
#include <doctest/doctest.h>

#include "core/result.hpp"

using namespace ps;

namespace {
Result<int> fails(int code) { return code ? err(code, "coded") : err("plain"); }
}  // namespace

TEST_CASE("result: an error may carry a code, and callers branch on it, not on the reason") {
    auto a = fails(7);
    REQUIRE_FALSE(a);
    CHECK(a.code() == 7);
    CHECK(a.error() == "coded");
    auto b = fails(0);
    CHECK(b.code() == 0);
    CHECK(b.error() == "plain");
    Result<int> ok = 3;
    CHECK(ok.code() == 0);
    Status st = fails(5).take_error();  // the code survives being passed on
    CHECK(st.code() == 5);
    CHECK(Status{}.code() == 0);
}
