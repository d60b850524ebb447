// Structured, levelled logs for node/ code: one line per event on stderr,
//   2026-01-02T03:04:05.678Z level=info event=download_complete id=3fa2c1d0 secs=4.21
// an event name followed by key=value fields (values with spaces, quotes, '='
// or control characters are double-quoted and escaped), so journald, grep and
// log shippers all read it. Quiet by default: only warnings and errors, until
// set_level() (the daemon's --log-level / log.level) says otherwise.
//
//   ps::log::info("download_complete", {{"id", hex}, {"secs", 4.21}});
//
// Thread-safe (the sink is locked); a line below the level costs one compare
// plus building the fields, so guard expensive ones with enabled().
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/result.hpp"

namespace ps::log {

enum class Level : int { Trace = 0, Debug, Info, Warn, Error, Off };

// One key=value pair. Numbers and booleans are formatted here.
struct Field {
    std::string_view key;
    std::string value;

    Field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
    Field(std::string_view k, std::string_view v) : key(k), value(v) {}
    Field(std::string_view k, const std::string& v) : key(k), value(v) {}
    template <std::integral T>
    Field(std::string_view k, T v) : key(k) {
        if constexpr (std::is_same_v<T, bool>) value = v ? "true" : "false";
        else value = std::to_string(v);
    }
    Field(std::string_view k, double v);
};
using Fields = std::initializer_list<Field>;

void set_level(Level);
Level level();
inline bool enabled(Level l) { return l != Level::Off && static_cast<int>(l) >= static_cast<int>(level()); }
// "trace", "debug", "info", "warn" (or "warning"), "error", "off".
Result<Level> parse_level(std::string_view name);
std::string_view to_string(Level);

// The line without its timestamp: "level=info event=x k=v ...".
std::string format(Level, std::string_view event, Fields fields);
void write(Level, std::string_view event, Fields fields);

// systemd's journal: when stderr is the stream named by $JOURNAL_STREAM
// ("DEV:INODE", set by systemd for a service whose stderr goes to the journal),
// each line starts with its syslog priority ("<4>level=warn ..."; journald
// strips it and files the line at that priority, so `journalctl -p warning`
// filters) and carries no timestamp of its own (the journal stamps it).
// journal_stream: $JOURNAL_STREAM's value (nullptr: unset); fd: the stream.
bool is_journal_stream(const char* journal_stream, int fd);
int syslog_priority(Level);  // trace, debug 7; info 6; warn 4; error 3

inline void trace(std::string_view event, Fields f = {}) { if (enabled(Level::Trace)) write(Level::Trace, event, f); }
inline void debug(std::string_view event, Fields f = {}) { if (enabled(Level::Debug)) write(Level::Debug, event, f); }
inline void info(std::string_view event, Fields f = {}) { if (enabled(Level::Info)) write(Level::Info, event, f); }
inline void warn(std::string_view event, Fields f = {}) { if (enabled(Level::Warn)) write(Level::Warn, event, f); }
inline void error(std::string_view event, Fields f = {}) { if (enabled(Level::Error)) write(Level::Error, event, f); }

}  // namespace ps::log
