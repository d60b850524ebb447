// Port mapping on the LAN's gateway: UPnP IGD (miniupnpc) and NAT-PMP
// (libnatpmp). portmap/ is the only module that includes their headers.
//
// A node behind a home router is seen by the DHT at the router's public
// address, and nobody outside can dial the private one it listens on
// (node/node_reach.cpp). Where the router offers UPnP IGD or NAT-PMP, it can
// be asked to forward a public port to this host; the node then advertises the
// public address and port instead (docs/daemon.md, "Port mapping").
//
// Every call here blocks (SSDP discovery, a SOAP request over HTTP, NAT-PMP's
// UDP retries) for at most a few times Options::timeout_ms, so the node runs
// them on a thread of their own and hands the result to its loop. Nothing here
// keeps state between calls: a Mapping carries what renewing or deleting it
// needs.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace ps::portmap {

enum class Method : std::uint8_t { Upnp, Natpmp };
enum class Protocol : std::uint8_t { Tcp, Udp };
const char* method_name(Method m);    // "upnp", "natpmp"
const char* protocol_name(Protocol p);  // "TCP", "UDP"

// Error codes (Result::code()).
enum : int {
    kNoGateway = 1,  // no gateway answered by this method (none on the LAN, or it does not speak it)
    kRefused = 2,    // the gateway answered and refused (conflict, not authorised, no public address)
};

struct Options {
    bool upnp = true;
    bool natpmp = true;
    // How long to wait for the gateway, per method: SSDP discovery for UPnP,
    // all of NAT-PMP's retries for one request.
    int timeout_ms = 2'000;
    // Lease asked for; renew() before half of it has passed. An IGD that only
    // takes permanent mappings (UPnP error 725) gets one with lease 0.
    std::uint32_t lease_s = 3'600;
    std::string description = "patchswarm";
};

struct Mapping {
    Method method = Method::Upnp;
    Protocol protocol = Protocol::Tcp;
    std::string external_host;  // the gateway's public IPv4 address
    std::uint16_t external_port = 0;
    std::uint16_t internal_port = 0;
    std::string internal_host;  // this host's address toward the gateway (UPnP; NAT-PMP: empty)
    std::uint32_t lease_s = 0;  // granted; 0 = permanent
    // UPnP: the IGD's WANIPConnection control URL and service type, to renew
    // and delete without discovering it again.
    std::string control_url, service_type;
};

// Asks the gateway to forward `protocol` traffic on a public port to
// `internal_port` of this host: UPnP IGD first, then NAT-PMP, each as enabled.
// The public port is `internal_port` where free, else another one the gateway
// grants. The error names every method tried and why each failed.
Result<Mapping> map(const Options& o, Protocol protocol, std::uint16_t internal_port);

// The same mapping again, before its lease runs out (same public port where
// the gateway still grants it). Falls back to map() when the gateway that
// granted it no longer answers.
Result<Mapping> renew(const Options& o, const Mapping& m);

// Deletes the mapping on the gateway (best effort; a lease runs out anyway).
Status unmap(const Options& o, const Mapping& m);

// "upnp 203.0.113.7:7401 -> 192.168.1.20:7401 TCP, lease 3600 s", for logs.
std::string describe(const Mapping& m);

}  // namespace ps::portmap
