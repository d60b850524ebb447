// A hostile-peer harness for tests: clients that speak the real protocol (the
// handshake and framing of transfer/), each with a fresh node key, and then
// misbehave (sit idle, never read, send forged messages).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "transfer/connection.hpp"
#include "wire/messages.hpp"

namespace ps::test {

struct Hostile : transfer::ConnectionHandler {
    transfer::Loop& loop;
    std::deque<transfer::Identity> ids;  // a connection refers to its identity
    std::vector<std::unique_ptr<transfer::Connection>> conns;
    std::map<std::uint64_t, std::uint64_t> ready_at;  // id -> loop ms
    std::map<std::uint64_t, transfer::CloseCode> closed;
    std::vector<Bytes> frames;  // every frame received, in order

    explicit Hostile(transfer::Loop& l) : loop(l) {}

    // Dials with a fresh node key; from_host poses as another machine.
    transfer::Connection& dial(std::uint16_t port, const std::string& from_host = {}, Role role = Role::Peer,
                               const std::string& domain = "d1") {
        auto kp = crypto::generate_keypair();
        ids.push_back(transfer::Identity{kp.sk, kp.pk, role, domain});
        conns.push_back(transfer::Connection::dial(loop, "127.0.0.1", port, ids.back(), *this, std::nullopt, from_host));
        return *conns.back();
    }
    std::size_t open() const {
        std::size_t n = 0;
        for (auto& [id, t] : ready_at) n += !closed.count(id);
        return n;
    }
    void send(transfer::Connection& c, const wire::Message& m) {
        Bytes b;
        wire::encode_message(m, b);
        c.send(b);
    }

    void on_ready(transfer::Connection& c) override { ready_at[c.id()] = loop.now_ms(); }
    void on_message(transfer::Connection&, ByteView f) override { frames.emplace_back(f.begin(), f.end()); }
    void on_closed(transfer::Connection& c, transfer::CloseCode code, const std::string&) override {
        closed[c.id()] = code;
    }
};

}  // namespace ps::test
