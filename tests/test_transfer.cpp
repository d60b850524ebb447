// The encrypted stream under hostile input: real libuv TCP on loopback, one
// loop. A misbehaving connection is closed with a reason naming the problem,
// and the other connections carry on.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>
#include <new>
#include <stdexcept>

#include "support.hpp"
#include "transfer/connection.hpp"
#include "wire/messages.hpp"

using namespace ps;
using namespace ps::test;

namespace {

transfer::Identity make_identity(Role role = Role::Peer, const std::string& domain = "d1") {
    auto kp = crypto::generate_keypair();
    return {kp.sk, kp.pk, role, domain};
}

// Records what happens to every connection it handles.
struct Recorder : transfer::ConnectionHandler {
    std::map<std::uint64_t, std::string> closed;  // id -> reason
    std::map<std::uint64_t, transfer::CloseCode> codes;  // id -> code
    std::map<std::uint64_t, std::vector<std::string>> messages;
    std::vector<std::uint64_t> ready;
    std::vector<std::unique_ptr<transfer::Connection>> owned;
    void on_ready(transfer::Connection& c) override { ready.push_back(c.id()); }
    void on_message(transfer::Connection& c, ByteView f) override { messages[c.id()].emplace_back(f.begin(), f.end()); }
    void on_closed(transfer::Connection& c, transfer::CloseCode code, const std::string& reason) override {
        closed[c.id()] = reason;
        codes[c.id()] = code;
    }
};

struct Fixture {
    transfer::Loop loop;
    transfer::Identity server_id = make_identity(Role::Super, "d1");
    transfer::Identity client_id = make_identity(Role::Peer, "d1");
    Recorder server, client;
    std::unique_ptr<transfer::Listener> listener;

    Fixture() {
        REQUIRE(crypto::init());
        auto l = transfer::Listener::start(loop, "127.0.0.1", 0, server_id, server,
                                           [this](std::unique_ptr<transfer::Connection> c) { server.owned.push_back(std::move(c)); });
        REQUIRE(l);
        listener = std::move(*l);
    }
    transfer::Connection& dial(std::optional<crypto::PublicKey> expect = std::nullopt) {
        client.owned.push_back(transfer::Connection::dial(loop, "127.0.0.1", listener->port(), client_id, client, expect));
        return *client.owned.back();
    }
    bool wait(std::function<bool()> f, std::uint64_t ms = 5000) { return run_until(loop, f, ms); }
    std::uint64_t server_conn(std::size_t i) { return server.owned.at(i)->id(); }
};

// A plain blocking TCP socket to the listener: a peer that speaks no patchswarm.
int raw_connect(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return fd;
}

}  // namespace

TEST_CASE("transfer: handshake authenticates both sides and frames arrive intact") {
    Fixture f;
    auto& c = f.dial(f.server_id.key);
    REQUIRE(f.wait([&] { return f.client.ready.size() == 1 && f.server.ready.size() == 1; }));
    CHECK(c.peer().key == f.server_id.key);
    CHECK(c.peer().role == Role::Super);
    CHECK(f.server.owned[0]->peer().key == f.client_id.key);
    CHECK(f.server.owned[0]->peer().domain == "d1");
    c.send(as_bytes("hello"));
    REQUIRE(f.wait([&] { return !f.server.messages.empty(); }));
    CHECK(f.server.messages.begin()->second == std::vector<std::string>{"hello"});
}

TEST_CASE("transfer: a peer that is not the node its record names is refused") {
    Fixture f;
    auto other = crypto::generate_keypair();
    auto& c = f.dial(other.pk);
    REQUIRE(f.wait([&] { return f.client.closed.count(c.id()); }));
    CHECK(f.client.closed[c.id()] == "handshake: peer is not the node its record names");
    CHECK(f.client.codes[c.id()] == transfer::CloseCode::HandshakeFailed);
    CHECK(f.client.ready.empty());
}

TEST_CASE("transfer: a frame over the limit closes that connection only") {
    Fixture f;
    auto& bad = f.dial();
    auto& good = f.dial();
    REQUIRE(f.wait([&] { return f.client.ready.size() == 2 && f.server.ready.size() == 2; }));
    bad.write_unframed({0x7f, 0xff, 0xff, 0xff});  // claims a 2 GiB frame
    REQUIRE(f.wait([&] { return f.server.closed.size() == 1; }));
    CHECK(f.server.closed.begin()->second.find("frame of 2147483647 bytes is outside the limits") != std::string::npos);
    CHECK(f.server.codes.begin()->second == transfer::CloseCode::ProtocolViolation);
    good.send(as_bytes("still here"));
    REQUIRE(f.wait([&] { return f.server.messages.size() == 1; }));
    CHECK(f.server.messages.begin()->second.front() == "still here");
    CHECK(f.server.closed.size() == 1);
}

TEST_CASE("transfer: random garbage after the handshake fails authentication and closes") {
    Fixture f;
    auto& c = f.dial();
    REQUIRE(f.wait([&] { return f.server.ready.size() == 1; }));
    Bytes junk(4 + 200);
    crypto::random_bytes(junk.data() + 4, 200);
    junk[3] = 200;  // a well-formed length, then 200 random bytes
    c.write_unframed(junk);
    REQUIRE(f.wait([&] { return f.server.closed.size() == 1; }));
    CHECK(f.server.closed.begin()->second == "secretstream: message failed authentication");
    CHECK(f.server.messages.empty());
}

TEST_CASE("transfer: an unknown protocol version and a non-patchswarm peer are refused with a reason") {
    Fixture f;
    SUBCASE("version") {
        int fd = raw_connect(f.listener->port());
        wire::Hello h;
        h.version = 99;
        auto hello = wire::encode_hello(h);
        REQUIRE(::write(fd, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
        REQUIRE(f.wait([&] { return f.server.closed.size() == 1; }));
        CHECK(f.server.closed.begin()->second == "handshake: peer speaks protocol version 99, this node speaks 1");
        CHECK(f.server.codes.begin()->second == transfer::CloseCode::HandshakeFailed);
        ::close(fd);
    }
    SUBCASE("garbage instead of a hello") {
        int fd = raw_connect(f.listener->port());
        const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n0123456789012";
        REQUIRE(::write(fd, http, 40) == 40);
        REQUIRE(f.wait([&] { return f.server.closed.size() == 1; }));
        CHECK(f.server.closed.begin()->second == "handshake: not a patchswarm peer (bad magic)");
        ::close(fd);
    }
}


TEST_CASE("transfer: every close carries a code, and the ordinary ones are the ends of a connection, not faults") {
    Fixture f;
    SUBCASE("the peer closes") {
        auto& c = f.dial();
        REQUIRE(f.wait([&] { return f.server.ready.size() == 1; }));
        c.close(transfer::CloseCode::Shutdown, "node shutting down");
        REQUIRE(f.wait([&] { return f.client.closed.size() == 1 && f.server.closed.size() == 1; }));
        CHECK(f.client.codes[c.id()] == transfer::CloseCode::Shutdown);
        CHECK(f.client.closed[c.id()] == "node shutting down");
        CHECK(f.server.codes.begin()->second == transfer::CloseCode::PeerClosed);
    }
    SUBCASE("nobody listens") {
        std::uint16_t port = f.listener->port();
        f.listener.reset();
        f.client.owned.push_back(transfer::Connection::dial(f.loop, "127.0.0.1", port, f.client_id, f.client));
        auto id = f.client.owned.back()->id();
        REQUIRE(f.wait([&] { return f.client.closed.count(id); }));
        CHECK(f.client.codes[id] == transfer::CloseCode::ConnectFailed);
        CHECK(f.client.closed[id].rfind("connect failed", 0) == 0);
    }
    SUBCASE("not an address") {
        f.client.owned.push_back(transfer::Connection::dial(f.loop, "not-an-ip", 1, f.client_id, f.client));
        auto id = f.client.owned.back()->id();
        REQUIRE(f.wait([&] { return f.client.closed.count(id); }));
        CHECK(f.client.codes[id] == transfer::CloseCode::BadAddress);
    }
    using C = transfer::CloseCode;
    for (C c : {C::PeerClosed, C::Shutdown, C::Duplicate, C::ConnectFailed, C::ReadFailed, C::WriteFailed, C::Goodbye,
              C::IdleTimeout})
        CHECK(transfer::ordinary(c));
    for (C c : {C::HandshakeTimeout, C::HandshakeFailed, C::BadAddress, C::StreamEnded, C::ProtocolViolation,
              C::Overloaded})
        CHECK_FALSE(transfer::ordinary(c));
    CHECK(std::string(transfer::to_string(C::Goodbye)) == "goodbye");
}

TEST_CASE("transfer: a listener on :: takes IPv4 and IPv6 peers on one port, and names an IPv4 peer as IPv4") {
    if (!have_ipv6_loopback()) {
        MESSAGE("skipped: this machine cannot bind ::1 (no IPv6 loopback)");
        return;
    }
    REQUIRE(crypto::init());
    transfer::Loop loop;
    auto server_id = make_identity(Role::Origin, "core");
    auto client_id = make_identity();
    Recorder server, client;
    auto l = transfer::Listener::start(loop, "::", 0, server_id, server,
                                       [&](std::unique_ptr<transfer::Connection> c) { server.owned.push_back(std::move(c)); });
    REQUIRE_MESSAGE(l, l.error());
    const auto port = (*l)->port();
    client.owned.push_back(transfer::Connection::dial(loop, "127.0.0.1", port, client_id, client, server_id.key));
    client.owned.push_back(transfer::Connection::dial(loop, "::1", port, client_id, client, server_id.key));
    REQUIRE(run_until(loop, [&] { return client.ready.size() == 2 && server.ready.size() == 2; }, 5000));
    CHECK(client.closed.empty());
    std::set<std::string> hosts;
    for (auto& c : server.owned) hosts.insert(c->remote().substr(0, c->remote().rfind(':')));
    CHECK(hosts == std::set<std::string>{"127.0.0.1", "[::1]"});  // not [::ffff:127.0.0.1]
}

TEST_CASE("transfer: an exception in a handler closes that connection only, and the loop goes on") {
    // The handler throws as the node could (out of memory while growing a
    // buffer); libuv callbacks must not let it through, which would end the process.
    struct Throwing : Recorder {
        void on_message(transfer::Connection& c, ByteView f) override {
            if (std::string(f.begin(), f.end()) == "boom") throw std::bad_alloc();
            Recorder::on_message(c, f);
        }
    };
    REQUIRE(crypto::init());
    transfer::Loop loop;
    auto server_id = make_identity(Role::Super), client_id = make_identity();
    Throwing server;
    Recorder client;
    auto l = transfer::Listener::start(loop, "127.0.0.1", 0, server_id, server,
                                       [&](std::unique_ptr<transfer::Connection> c) { server.owned.push_back(std::move(c)); });
    REQUIRE(l);
    for (int i = 0; i < 2; ++i)
        client.owned.push_back(transfer::Connection::dial(loop, "127.0.0.1", (*l)->port(), client_id, client));
    REQUIRE(run_until(loop, [&] { return server.ready.size() == 2 && client.ready.size() == 2; }, 5000));
    auto bytes = [](std::string s) { return Bytes(s.begin(), s.end()); };
    client.owned[0]->send(bytes("boom"));
    REQUIRE(run_until(loop, [&] { return server.closed.size() == 1; }, 5000));
    auto [bad, reason] = *server.closed.begin();
    CHECK(server.codes[bad] == transfer::CloseCode::InternalError);
    CHECK(reason == "internal error: out of memory");
    CHECK_FALSE(transfer::ordinary(transfer::CloseCode::InternalError));
    // The other connection carries on.
    client.owned[1]->send(bytes("still here"));
    CHECK(run_until(loop, [&] { return server.messages.size() == 1; }, 5000));
    CHECK(server.messages.begin()->second == std::vector<std::string>{"still here"});
    // So does the loop after a posted task and a timer threw.
    bool after = false;
    loop.post([] { throw std::runtime_error("posted"); });
    transfer::Timer t(loop);
    t.start(10, 0, [] { throw std::runtime_error("timer"); });
    loop.post([&] { after = true; });
    CHECK(run_until(loop, [&] { return after; }, 2000));
    run_until(loop, [] { return false; }, 100);  // the timer fires
}
