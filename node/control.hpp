// The control protocol between `patchswarm status|list|add|pause|resume|remove|
// reload` (and `fetch --daemon`) and a running node, over its local socket
// (transfer/local_server.hpp). Version 1, one JSON object per line each way:
//
//   -> {"v":1,"cmd":"status"}
//   <- {"v":1,"ok":true,"node":{...},"patches":[...]}
//   -> {"v":1,"cmd":"pause","patch":"3fa2c1"}        (manifest id prefix or patch name)
//   <- {"v":1,"ok":false,"error":"no patch matches '3fa2c1'"}
//
// Commands and their string arguments (docs/daemon.md has the replies):
//   status [patch]   list   add (manifest | name) [out]   pause patch
//   resume patch     remove patch   reload   publish manifest file
//   rollout name [version]   policy [battery] [on_ac] [metered]
//   statement statement (hex of a signed operator statement)
// `add` by name and `rollout` ask the network and answer when it replied.
// A request must be a JSON object with "v": 1 and a known "cmd"; unknown
// arguments, non-string arguments, and missing ones are errors. Bounds: a line
// of at most kMaxRequestLine bytes, nesting of at most kMaxRequestDepth, at
// most kMaxRequestKeys keys, argument values of at most kMaxArgument bytes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace ps::node::control {

inline constexpr int kVersion = 1;
inline constexpr std::size_t kMaxRequestLine = 64 * 1024;
inline constexpr int kMaxRequestDepth = 4;
inline constexpr std::size_t kMaxRequestKeys = 16;
inline constexpr std::size_t kMaxArgument = 4096;
inline constexpr std::size_t kMaxReplyLine = 16u << 20;

struct Request {
    std::string cmd;
    std::map<std::string, std::string> args;
    const std::string* arg(const std::string& name) const {
        auto it = args.find(name);
        return it == args.end() ? nullptr : &it->second;
    }
};

// Decodes and checks one request line (no exception escapes).
Result<Request> parse_request(std::string_view line);

// Kinds of failure a reply names in "code" (and a client's ps::Error::code
// holds), so that callers branch on the code, never on the error's wording.
enum ErrorCode : int {
    kErrNone = 0,
    kErrAlreadyHere = 1,  // the patch is already here; the reply's "id" names it
    kErrRollback = 2,     // an older or conflicting version than one accepted; never passes later
};
// "already_here", "rollback"; "" for kErrNone or an unknown code.
const char* code_name(int code);
// The code a reply's "code" names; kErrNone when absent or unknown.
int code_from_name(std::string_view name);

// {"v":1,"ok":false,"error":"...","code":"..."} ("code" only when not kErrNone),
// plus the extra string fields given.
std::string error_reply(const std::string& reason, int code = kErrNone,
                        const std::map<std::string, std::string>& extra = {});
// A request line: {"v":1,"cmd":cmd,...args}
std::string make_request(const std::string& cmd, const std::map<std::string, std::string>& args = {});

// The client side: a blocking connection to the control socket (CLI use).
class Client {
public:
    static Result<Client> connect(const std::string& socket_path, int timeout_ms = 10'000);
    Client(Client&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }
    Client& operator=(Client&&) = delete;
    Client(const Client&) = delete;
    ~Client();
    // Sends one line, returns the reply line (without its newline).
    Result<std::string> call(std::string_view request_line);

private:
    explicit Client(int fd) : fd_(fd) {}
    int fd_ = -1;
    std::string buf_;
};

}  // namespace ps::node::control
