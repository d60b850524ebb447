// A local control socket: a Unix domain stream socket, readable and writable by
// the owner only, speaking one request line -> one reply line. What the lines
// mean is the caller's business (node/control: versioned JSON); this is only the
// libuv side: accept, split lines, bound what a client can cost, write replies.
//
// Permissions: the socket is created mode 0600 inside a folder that must be
// mode 0700 and owned by this user (created so when missing). A folder that
// others may enter, or a path that exists and is not a socket, is refused, not
// fixed: chmod-ing an arbitrary folder (say /tmp) would do more harm than good.
// A stale socket (nobody listening) is replaced; a live one means another
// process serves it, and start() fails. Each accepted client's credentials are
// checked as well (SO_PEERCRED): only this user and root are answered.
//
// Limits: a request line longer than max_line is answered with overflow_reply
// and the connection is closed; a client that sends more than 2 x max_line
// while one of its requests is being answered is dropped; at most max_clients connections at once; a
// client that stops reading its replies is dropped once max_queued reply bytes
// wait for it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "transfer/loop.hpp"
#include "transfer/stream.hpp"

namespace ps::transfer {

class LocalServer {
public:
    // Called on the loop thread with one line (without its newline); returns
    // the reply (without a newline; one is added).
    using Handler = std::function<std::string(std::string_view line)>;
    // Sends the reply to one request; callable once, later, from the loop
    // thread. Safe to call after the client or the server went away (it then
    // does nothing).
    using Respond = std::function<void(std::string reply)>;
    // A handler that may answer later (a reply that needs the network). A
    // client's next line is not handed over before its previous one was
    // answered, so replies keep the order of requests.
    using AsyncHandler = std::function<void(std::string_view line, Respond respond)>;
    struct Limits {
        std::size_t max_line = 64 * 1024;
        std::size_t max_clients = 16;
        std::size_t max_queued = 4u << 20;
        std::string overflow_reply = "request line too long";
    };

    static Result<std::unique_ptr<LocalServer>> start(Loop& loop, const std::string& path, AsyncHandler handler,
                                                      Limits limits);
    static Result<std::unique_ptr<LocalServer>> start(Loop& loop, const std::string& path, Handler handler,
                                                      Limits limits) {
        return start(
            loop, path,
            [h = std::move(handler)](std::string_view line, Respond respond) { respond(h(line)); },
            std::move(limits));
    }
    static Result<std::unique_ptr<LocalServer>> start(Loop& loop, const std::string& path, Handler handler) {
        return start(loop, path, std::move(handler), Limits{});
    }
    ~LocalServer();  // closes every client and the socket, and unlinks the path
    LocalServer(const LocalServer&) = delete;
    LocalServer& operator=(const LocalServer&) = delete;

    const std::string& path() const { return path_; }
    std::size_t clients() const { return clients_.size(); }

    struct Client;  // one accepted connection (local_server.cpp)

private:
    LocalServer(Loop& loop, std::string path, AsyncHandler handler, Limits limits);
    void on_connection();
    void process_lines(Client* c);
    void on_line(Client* c, std::string_view line);
    void reply(Client* c, std::string text, bool then_close);
    void drop(Client* c);

    Loop& loop_;
    std::string path_;
    AsyncHandler handler_;
    Limits limits_;
    Stream stream_;  // the listening socket
    std::set<Client*> clients_;
    std::uint64_t next_client_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Checks, and creates when missing, the folder a control socket lives in:
// a directory owned by this user with mode 0700. Exposed for tests.
Status prepare_socket_folder(const std::string& socket_path);

}  // namespace ps::transfer
