// wire/beacon.hpp: the LAN discovery beacon, and the multicast socket that
// carries it (transfer/multicast.hpp).
#include <doctest/doctest.h>

#include "transfer/loop.hpp"
#include "transfer/multicast.hpp"
#include "wire/beacon.hpp"

using namespace ps;

TEST_CASE("beacon: round trip, fixed size, and every malformation refused with a reason") {
    wire::Beacon b{7402, 0x50A7C4, 0x0102030405060708ull};
    auto bytes = wire::encode_beacon(b);
    REQUIRE(bytes.size() == wire::kBeaconBytes);
    auto d = wire::decode_beacon(bytes);
    REQUIRE(d);
    CHECK(d->dht_port == 7402);
    CHECK(d->network_id == 0x50A7C4u);
    CHECK(d->sender == 0x0102030405060708ull);

    auto bad = [&](Bytes x, const char* why) {
        auto r = wire::decode_beacon(x);
        REQUIRE_FALSE(r);
        CHECK_MESSAGE(r.error().find(why) != std::string::npos, r.error());
    };
    bad(Bytes(bytes.begin(), bytes.end() - 1), "23 bytes");
    auto longer = bytes;
    longer.push_back(0);
    bad(longer, "25 bytes");
    bad({}, "0 bytes");
    auto magic = bytes;
    magic[0] = 'X';
    bad(magic, "magic");
    auto version = bytes;
    version[4] = 2;
    bad(version, "version 2");
    auto port = wire::encode_beacon({0, 1, 2});
    bad(port, "port 0");
    // Flags and reserved bytes are for later versions: ignored.
    auto flags = bytes;
    flags[5] = 0xFF;
    flags[12] = 0xFF;
    CHECK(wire::decode_beacon(flags));
}

TEST_CASE("beacon: a multicast socket names the step that failed") {
    // The socket itself carries beacons between namespaces in lan_discovery.sh.
    transfer::Loop loop;
    auto s = transfer::MulticastSocket::open(loop, "not-an-address", 0, {});
    REQUIRE_FALSE(s);
    CHECK_MESSAGE(s.error().find("group address") != std::string::npos, s.error());
}
