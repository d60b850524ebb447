// Result<T>: a value or an error with a human-readable reason and, where a
// caller branches on the kind of failure, a numeric code (0: none given).
// Branch on the code, never on the wording of the reason.
// Errors cross module boundaries as values (never as exceptions through
// event-loop callbacks). Kept tiny on purpose: std::expected is C++23 and the
// project builds as C++20 with g++ 12.
#pragma once

#include <cassert>
#include <exception>
#include <new>
#include <string>
#include <utility>
#include <variant>

namespace ps {

struct Error {
    std::string reason;
    int code = 0;  // the owning module's code for this kind of failure; 0 = none
};

inline Error err(std::string reason) { return Error{std::move(reason)}; }
inline Error err(int code, std::string reason) { return Error{std::move(reason), code}; }

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { assert(ok()); return std::get<0>(v_); }
    const T& value() const& { assert(ok()); return std::get<0>(v_); }
    T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const std::string& error() const { assert(!ok()); return std::get<1>(v_).reason; }
    int code() const { return ok() ? 0 : std::get<1>(v_).code; }
    Error take_error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

// Result<void>: success or an error.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : failed_(true), e_(std::move(e)) {}
    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const std::string& error() const { return e_.reason; }
    int code() const { return e_.code; }
    Error take_error() && { return std::move(e_); }

private:
    bool failed_ = false;
    Error e_;
};

using Status = Result<void>;

// Runs f (which returns a Result) and turns an exception it throws (bad_alloc,
// a library's own) into the error "<what>: <exception text>". Used at the
// boundary of each decoder of outside bytes and each adapter, so that no
// exception unwinds into an event-loop callback or a library's thread.
template <class F>
auto catch_as_error(const char* what, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        return err(std::string(what) + ": out of memory");
    } catch (const std::exception& e) {
        return err(std::string(what) + ": " + e.what());
    } catch (...) {
        return err(std::string(what) + ": unknown exception");
    }
}

}  // namespace ps
