#include "transfer/local_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "transfer/line_framing.hpp"

namespace ps::transfer {

namespace {

std::string mode_str(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
}

std::string folder_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// 1: someone accepts connections on `path`; 0: nobody (stale); -1: not checkable.
int socket_alive(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int e = errno;
    ::close(fd);
    if (rc == 0) return 1;
    return e == ECONNREFUSED || e == ENOENT ? 0 : -1;
}

}  // namespace

Status prepare_socket_folder(const std::string& socket_path) {
    std::string dir = folder_of(socket_path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno != ENOENT) return err("control socket folder " + dir + ": " + std::strerror(errno));
        std::error_code ec;
        std::filesystem::create_directories(folder_of(dir), ec);
        if (ec) return err("cannot create " + folder_of(dir) + ": " + ec.message());
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            return err("cannot create control socket folder " + dir + ": " + std::strerror(errno));
        if (::stat(dir.c_str(), &st) != 0) return err("control socket folder " + dir + ": " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return err("control socket folder " + dir + " is not a directory");
    if (st.st_uid != ::geteuid())
        return err("control socket folder " + dir + " belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
                   std::to_string(::geteuid()) + " that runs the node; use a folder of its own");
    if ((st.st_mode & 077) != 0)
        return err("control socket folder " + dir + " has mode " + mode_str(st.st_mode) +
                   "; it must be 0700 (owner only): run chmod 700 " + dir + " or choose another folder");
    return {};
}

// Freed by its stream's close callback; `owner` is cleared when dropped.
struct LocalServer::Client {
    explicit Client(Loop& loop) : stream(loop, Stream::Kind::Pipe, 16 * 1024) {}
    Stream stream;
    LocalServer* owner = nullptr;
    std::string buf;
    std::size_t queued = 0;       // reply bytes not yet written
    std::uint64_t serial = 0;     // names the client in pending replies
    bool pending = false;         // a request is being answered; later lines wait
    bool eof = false;             // the client half-closed: close once answered
    bool close_after_write = false;
};

namespace {

void close_client_handle(LocalServer::Client* c) {
    c->stream.close([c] { delete c; });
}

}  // namespace

LocalServer::LocalServer(Loop& loop, std::string path, AsyncHandler handler, Limits limits)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)), limits_(std::move(limits)),
      stream_(loop, Stream::Kind::Pipe, 0) {}

Result<std::unique_ptr<LocalServer>> LocalServer::start(Loop& loop, const std::string& path, AsyncHandler handler,
                                                        Limits limits) {
    if (path.empty()) return err("control socket: empty path");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
        return err("control socket path " + path + " is " + std::to_string(path.size()) + " bytes; at most " +
                   std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " fit a Unix socket address");
    if (auto st = prepare_socket_folder(path); !st) return std::move(st).take_error();
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return err("control socket path " + path + " exists and is not a socket");
        int alive = socket_alive(path);
        if (alive == 1) return err("another process is listening on " + path + " (is a node already running?)");
        if (alive < 0) return err("control socket " + path + " exists and cannot be checked");
        if (::unlink(path.c_str()) != 0)
            return err("cannot remove the stale control socket " + path + ": " + std::strerror(errno));
    }

    std::unique_ptr<LocalServer> s(new LocalServer(loop, path, std::move(handler), std::move(limits)));
    LocalServer* self = s.get();
    auto fail = [&](const std::string& what, int rc) -> Error {
        std::string reason = "control socket " + path + ": " + what + ": " + Stream::error_name(rc);
        return err(reason);  // the destructor closes the handle and unlinks the path
    };
    if (int rc = s->stream_.bind(path); rc != 0) {
        auto e = fail("bind", rc);
        s->path_.clear();  // not ours to unlink
        return e;
    }
    // The folder is owner-only already; the socket itself is made so too before
    // anyone could be accepted.
    if (::chmod(path.c_str(), 0600) != 0) return err("control socket " + path + ": chmod: " + std::strerror(errno));
    if (int rc = s->stream_.listen(16, [self](int status) {
            if (status == 0) self->on_connection();
        });
        rc != 0)
        return fail("listen", rc);
    return s;
}

LocalServer::~LocalServer() {
    *alive_ = false;
    for (Client* c : clients_) {
        c->owner = nullptr;
        close_client_handle(c);
    }
    clients_.clear();
    stream_.close();
    if (!path_.empty()) ::unlink(path_.c_str());
}

void LocalServer::on_connection() {
    auto* c = new Client(loop_);
    if (stream_.accept(c->stream) != 0) return close_client_handle(c);
    // Only this user (and root) may talk to the node, whatever the file modes say.
    int fd = c->stream.fd();
    ucred cred{};
    socklen_t len = sizeof cred;
    bool allowed = fd >= 0 && ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                   (cred.uid == ::geteuid() || cred.uid == 0);
    if (!allowed || clients_.size() >= limits_.max_clients) return close_client_handle(c);
    c->owner = this;
    c->serial = ++next_client_;
    clients_.insert(c);
    c->stream.on_written([c](std::size_t n, int status) {
        c->queued -= n;
        if (!c->owner) return;
        if (status != 0 || (c->close_after_write && c->queued == 0)) c->owner->drop(c);
    });
    c->stream.start_reading([c](ssize_t n, const char* data) {
        LocalServer* self = c->owner;
        if (!self) return;
        if (n < 0) {
            // EOF (the client half-closed) or an error: answer what is asked, then close.
            c->stream.stop_reading();
            if (n != Stream::kEof || (c->queued == 0 && !c->pending && c->buf.find('\n') == std::string::npos))
                return self->drop(c);
            c->eof = true;
            self->process_lines(c);
            return;
        }
        c->buf.append(data, static_cast<std::size_t>(n));
        if (c->pending && c->buf.size() > 2 * self->limits_.max_line) {
            // Lines keep coming while one is being answered: the client
            // does not wait for replies. Bound what it can make us hold.
            return self->drop(c);
        }
        self->process_lines(c);
    });
}

// Hands complete lines to the handler, one at a time: the next waits until
// the previous one was answered.
void LocalServer::process_lines(Client* c) {
    std::size_t start = 0;
    while (!c->pending && c->owner) {
        auto cut = next_line(c->buf, start, limits_.max_line);
        if (cut.kind != LineCut::Kind::Line) break;
        std::string line(cut.line);  // on_line may answer, and so touch the buffer
        start = cut.next;
        on_line(c, line);
    }
    if (!c->owner) return;  // dropped while answering
    c->buf.erase(0, start);
    if (c->pending) return;
    if (next_line(c->buf, 0, limits_.max_line).kind == LineCut::Kind::TooLong) {
        // No newline within the limit: answer once, then hang up.
        c->buf.clear();
        c->buf.shrink_to_fit();
        c->stream.stop_reading();
        return reply(c, limits_.overflow_reply, true);
    }
    if (c->eof) {
        if (c->queued == 0) return drop(c);
        c->close_after_write = true;
    }
}

void LocalServer::on_line(Client* c, std::string_view line) {
    c->pending = true;
    std::weak_ptr<bool> alive = alive_;
    auto answered = std::make_shared<bool>(false);
    Respond respond = [this, alive, serial = c->serial, answered](std::string text) {
        auto a = alive.lock();
        if (!a || !*a || *answered) return;
        *answered = true;
        Client* cl = nullptr;
        for (Client* x : clients_)
            if (x->serial == serial) cl = x;
        if (!cl) return;  // the client went away meanwhile
        cl->pending = false;
        reply(cl, std::move(text), false);
        if (!cl->owner) return;
        // Later lines waited for this answer; go on with them outside this call.
        loop_.post([this, alive, serial] {
            auto a2 = alive.lock();
            if (!a2 || !*a2) return;
            for (Client* x : clients_)
                if (x->serial == serial) return process_lines(x);
        });
    };
    try {
        handler_(line, respond);
    } catch (...) {  // the handler is not supposed to throw; never let it unwind through libuv
        respond("internal error");
    }
}

void LocalServer::reply(Client* c, std::string text, bool then_close) {
    text += '\n';
    if (c->queued + text.size() > limits_.max_queued) return drop(c);
    if (then_close) c->close_after_write = true;
    std::size_t n = text.size();
    c->queued += n;
    if (c->stream.write(std::move(text)) != 0) {
        c->queued -= n;
        drop(c);
    }
}

void LocalServer::drop(Client* c) {
    clients_.erase(c);
    c->owner = nullptr;
    close_client_handle(c);
}

}  // namespace ps::transfer
