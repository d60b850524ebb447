// dht/addr.hpp: the address helpers the DHT adapter and the daemon share.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "dht/addr.hpp"

using namespace ps::dht;

TEST_CASE("addr: host_string gives canonical literals, IPv4-mapped addresses as IPv4, nothing for others") {
    auto v4 = parse_ip("10.77.1.2", 7402);
    REQUIRE(v4);
    CHECK(host_string(reinterpret_cast<const sockaddr*>(&v4->ss)) == "10.77.1.2");
    auto v6 = parse_ip("2001:db8::1", 7402);
    REQUIRE(v6);
    CHECK(host_string(reinterpret_cast<const sockaddr*>(&v6->ss)) == "2001:db8::1");
    // What a dual-stack socket reports for an IPv4 peer.
    auto mapped = parse_ip("::ffff:192.0.2.7", 1);
    REQUIRE(mapped);
    CHECK(host_string(reinterpret_cast<const sockaddr*>(&mapped->ss)) == "192.0.2.7");
    sockaddr_storage unix_family{};
    unix_family.ss_family = AF_UNIX;
    CHECK(host_string(reinterpret_cast<const sockaddr*>(&unix_family)).empty());
    CHECK(host_string(nullptr).empty());
    CHECK_FALSE(parse_ip("example.org", 1));
    auto hp = parse_host_port("[::1]:4222");
    REQUIRE(hp);
    CHECK(hp->host == "::1");
    CHECK(hp->port == "4222");
}
