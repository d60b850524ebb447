// A raw OpenDHT node on loopback that applies no patchswarm policy and can put
// any value with any OpenDHT id and seq: the attacker in the DHT tests. Kept
// in its own translation unit (tests/test_dht_attacker_node.cpp) because
// OpenDHT's headers clash with doctest's macros.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/bytes.hpp"
#include "dht/keys.hpp"

namespace ps::test {

class RawDhtNode {
public:
    struct Value {
        std::uint64_t id = 0;
        std::uint16_t seq = 0;
        std::uint16_t type = 0;
        Bytes data;
    };
    // Joins the NetId 0x50A7C4 overlay through 127.0.0.1:seed_port.
    explicit RawDhtNode(std::uint16_t seed_port);
    ~RawDhtNode();
    std::size_t good_nodes() const;
    std::vector<Value> get(const dht::Key&);  // blocks until the lookup ends
    void put(const dht::Key&, const Value&);   // blocks until the put ends
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ps::test
