#include "node/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace ps::log {

namespace {

std::atomic<int> g_level{static_cast<int>(Level::Warn)};

bool journal() {
    static const bool yes = is_journal_stream(std::getenv("JOURNAL_STREAM"), 2);
    return yes;
}

// spdlog supplies the locked stderr sink and the UTC timestamp; the level and
// fields are formatted here so that the line is key=value throughout.
spdlog::logger& sink() {
    static std::shared_ptr<spdlog::logger> logger = [] {
        auto s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        auto l = std::make_shared<spdlog::logger>("patchswarm", std::move(s));
        if (journal()) l->set_pattern("%v");  // the journal stamps each line itself
        else l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc);
        l->set_level(spdlog::level::trace);  // filtering happens in enabled()
        l->flush_on(spdlog::level::trace);    // stderr is unbuffered anyway; keep lines whole and prompt
        return l;
    }();
    return *logger;
}

bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    for (unsigned char c : v)
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
    return false;
}

void append_value(std::string& out, std::string_view v) {
    if (!needs_quotes(v)) {
        out += v;
        return;
    }
    out += '"';
    for (unsigned char c : v) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\x%02x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);  // UTF-8 passes through
                }
        }
    }
    out += '"';
}

// Keys are code, not data, but keep the line parseable whatever they are.
void append_key(std::string& out, std::string_view k) {
    for (char c : k) out += (c == ' ' || c == '=' || c == '"') ? '_' : c;
}

}  // namespace

Field::Field(std::string_view k, double v) : key(k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    value = buf;
}

void set_level(Level l) { g_level.store(static_cast<int>(l)); }
Level level() { return static_cast<Level>(g_level.load()); }

Result<Level> parse_level(std::string_view n) {
    if (n == "trace") return Level::Trace;
    if (n == "debug") return Level::Debug;
    if (n == "info") return Level::Info;
    if (n == "warn" || n == "warning") return Level::Warn;
    if (n == "error") return Level::Error;
    if (n == "off") return Level::Off;
    return err("'" + std::string(n.substr(0, 64)) + "' is not a log level (trace, debug, info, warn, error, off)");
}

std::string_view to_string(Level l) {
    switch (l) {
        case Level::Trace: return "trace";
        case Level::Debug: return "debug";
        case Level::Info: return "info";
        case Level::Warn: return "warn";
        case Level::Error: return "error";
        case Level::Off: return "off";
    }
    return "?";
}

std::string format(Level l, std::string_view event, Fields fields) {
    std::string line = "level=";
    line += to_string(l);
    line += " event=";
    append_value(line, event);
    for (auto& f : fields) {
        line += ' ';
        append_key(line, f.key);
        line += '=';
        append_value(line, f.value);
    }
    return line;
}

void write(Level l, std::string_view event, Fields fields) {
    if (!enabled(l)) return;
    std::string line = format(l, event, fields);
    if (journal()) line.insert(0, "<" + std::to_string(syslog_priority(l)) + ">");
    sink().log(spdlog::level::info, "{}", line);
}

bool is_journal_stream(const char* journal_stream, int fd) {
    if (!journal_stream) return false;
    unsigned long long dev = 0, ino = 0;
    char tail = 0;
    if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &tail) != 2) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

int syslog_priority(Level l) {
    switch (l) {
        case Level::Error: return 3;
        case Level::Warn: return 4;
        case Level::Info: return 6;
        default: return 7;
    }
}

}  // namespace ps::log
