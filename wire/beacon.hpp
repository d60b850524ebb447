// LAN discovery beacon: what a node multicasts on its LAN so that nodes with no
// bootstrap node find a DHT node to join (node/node_lan.cpp; docs/daemon.md,
// "LAN discovery"). One UDP datagram of exactly kBeaconBytes:
//
//   0  magic "PSLD"            4 bytes
//   4  version                 1 (kBeaconVersion)
//   5  flags                   1 (none defined; ignored)
//   6  DHT port                2, big-endian, not 0
//   8  DHT network id          4, big-endian (nodes of another network ignore it)
//  12  reserved                4 (ignored)
//  16  sender                  8, random per process (a node hears its own beacons)
//
// The sender's IP address is the datagram's source address, never a field: a
// beacon can only point at the host that sent it.
#pragma once

#include <cstdint>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace ps::wire {

inline constexpr std::size_t kBeaconBytes = 24;
inline constexpr std::uint8_t kBeaconVersion = 1;

struct Beacon {
    std::uint16_t dht_port = 0;
    std::uint32_t network_id = 0;
    std::uint64_t sender = 0;
};

Bytes encode_beacon(const Beacon& b);
// Refuses anything but a kBeaconBytes datagram with the magic, version 1 and a
// DHT port; the error names what is wrong.
Result<Beacon> decode_beacon(ByteView data);

}  // namespace ps::wire
