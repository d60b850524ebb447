// No exception may unwind into libuv: it is C, and an exception crossing it
// terminates the process. Every trampoline in transfer/ runs its C++ callback
// through guard(), which turns an exception into a call of on_error with a
// text naming it (the connection closes, the loop goes on).
#pragma once

#include <string>
#include <utility>

namespace ps::transfer {

// Inside a catch block: the current exception as text.
std::string current_exception_text();
// The last resort where nobody owns the failure: one line on stderr.
void report_exception(const char* where, const std::string& what) noexcept;

template <class F, class OnError>
void guard(F&& f, OnError&& on_error) noexcept {
    try {
        f();
    } catch (...) {
        try {
            on_error(current_exception_text());
        } catch (...) {
            report_exception("error handler", "threw in turn");
        }
    }
}

// guard() with report_exception as the handler.
template <class F>
void guard_report(const char* where, F&& f) noexcept {
    guard(std::forward<F>(f), [where](const std::string& what) { report_exception(where, what); });
}

}  // namespace ps::transfer
