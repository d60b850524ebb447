#include "node/control.hpp"

#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace ps::node::control {

namespace {

// Nesting depth outside strings, found before the JSON parser sees the text.
int max_depth(std::string_view s) {
    int depth = 0, most = 0;
    bool in_str = false, esc = false;
    for (char c : s) {
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') most = std::max(most, ++depth);
        else if (c == '}' || c == ']') --depth;
    }
    return most;
}

struct CommandArgs {
    std::set<std::string> required, optional;
};

const std::map<std::string, CommandArgs>& commands() {
    static const std::map<std::string, CommandArgs> m{
        {"status", {{}, {"patch"}}},
        {"list", {{}, {}}},
        {"add", {{}, {"manifest", "name", "out"}}},  // exactly one of manifest and name
        {"pause", {{"patch"}, {}}},
        {"resume", {{"patch"}, {}}},
        {"remove", {{"patch"}, {}}},
        {"reload", {{}, {}}},
        {"publish", {{"manifest", "file"}, {}}},
        {"rollout", {{"name"}, {"version"}}},
        {"policy", {{}, {"battery", "on_ac", "metered"}}},  // the vendor's live state; none: just show
        {"statement", {{"statement"}, {}}},  // a signed operator statement, hex
    };
    return m;
}

}  // namespace

Result<Request> parse_request(std::string_view line) {
    if (line.size() > kMaxRequestLine)
        return err("request of " + std::to_string(line.size()) + " bytes; at most " + std::to_string(kMaxRequestLine));
    if (max_depth(line) > kMaxRequestDepth) return err("request nested too deeply");
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return err("request is not valid JSON");
    if (!j.is_object()) return err("request must be a JSON object");
    if (j.size() > kMaxRequestKeys) return err("request has too many keys");
    auto v = j.find("v");
    if (v == j.end()) return err("request has no protocol version \"v\"");
    if (!v->is_number_integer() || v->get<std::int64_t>() != kVersion)
        return err("unsupported protocol version " + v->dump().substr(0, 32) + " (this node speaks " +
                   std::to_string(kVersion) + ")");
    auto c = j.find("cmd");
    if (c == j.end() || !c->is_string()) return err("request has no command \"cmd\"");
    Request r;
    r.cmd = c->get<std::string>();
    auto known = commands().find(r.cmd);
    if (known == commands().end()) return err("unknown command '" + r.cmd.substr(0, 32) + "'");
    for (auto& [key, val] : j.items()) {
        if (key == "v" || key == "cmd") continue;
        if (!known->second.required.count(key) && !known->second.optional.count(key))
            return err("command '" + r.cmd + "' takes no argument '" + key.substr(0, 32) + "'");
        if (!val.is_string()) return err("argument '" + key + "' must be a string");
        auto s = val.get<std::string>();
        if (s.size() > kMaxArgument) return err("argument '" + key + "' is longer than " + std::to_string(kMaxArgument));
        if (s.find('\0') != std::string::npos) return err("argument '" + key + "' contains a NUL character");
        r.args[key] = std::move(s);
    }
    for (auto& need : known->second.required)
        if (!r.args.count(need)) return err("command '" + r.cmd + "' needs argument '" + need + "'");
    return r;
}

const char* code_name(int code) {
    switch (code) {
        case kErrAlreadyHere: return "already_here";
        case kErrRollback: return "rollback";
        default: return "";
    }
}

int code_from_name(std::string_view name) {
    for (int c : {kErrAlreadyHere, kErrRollback})
        if (name == code_name(c)) return c;
    return kErrNone;
}

std::string error_reply(const std::string& reason, int code, const std::map<std::string, std::string>& extra) {
    nlohmann::json j{{"v", kVersion}, {"ok", false}, {"error", reason}};
    if (code != kErrNone) j["code"] = code_name(code);
    for (auto& [k, v] : extra) j[k] = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string make_request(const std::string& cmd, const std::map<std::string, std::string>& args) {
    nlohmann::json j{{"v", kVersion}, {"cmd", cmd}};
    for (auto& [k, v] : args) j[k] = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---- client ----

Result<Client> Client::connect(const std::string& path, int timeout_ms) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return err("control socket path " + path + " is too long");
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return err(std::string("socket: ") + std::strerror(errno));
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int e = errno;
        ::close(fd);
        std::string hint = e == ENOENT || e == ECONNREFUSED ? " (is the node running?)" : "";
        return err("cannot connect to " + path + ": " + std::strerror(e) + hint);
    }
    return Client(fd);
}

Client::~Client() {
    if (fd_ >= 0) ::close(fd_);
}

Result<std::string> Client::call(std::string_view request_line) {
    std::string out(request_line);
    out += '\n';
    for (std::size_t off = 0; off < out.size();) {
        ssize_t n = ::send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return err(std::string("control socket: send: ") + std::strerror(errno));
        off += static_cast<std::size_t>(n);
    }
    for (;;) {
        if (auto nl = buf_.find('\n'); nl != std::string::npos) {
            std::string line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            return line;
        }
        if (buf_.size() > kMaxReplyLine) return err("control socket: reply longer than " + std::to_string(kMaxReplyLine));
        char tmp[16384];
        ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return err("control socket: no reply in time");
        if (n < 0) return err(std::string("control socket: recv: ") + std::strerror(errno));
        if (n == 0) return err("control socket: the node closed the connection");
        buf_.append(tmp, static_cast<std::size_t>(n));
    }
}

}  // namespace ps::node::control
