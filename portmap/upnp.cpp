// UPnP IGD through miniupnpc: SSDP discovery of an InternetGatewayDevice on
// the LAN, then WANIPConnection's GetExternalIPAddress and AddPortMapping.
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include <arpa/inet.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "portmap/portmap_impl.hpp"

namespace ps::portmap::detail {

namespace {

// UPnP error codes from the WANIPConnection spec that change what to do next.
constexpr int kConflictInMappingEntry = 718;
constexpr int kOnlyPermanentLeases = 725;

std::string upnp_error(int code) {
    const char* s = strupnperror(code);
    return std::to_string(code) + (s ? std::string(" ") + s : std::string());
}

struct Igd {
    std::string control_url, service_type, lan_addr;
};

Result<Igd> discover(const Options& o) {
    int error = 0;
    UPNPDev* devs = upnpDiscover(o.timeout_ms, nullptr, nullptr, UPNP_LOCAL_PORT_ANY, 0, 2, &error);
    if (!devs)
        return err(kNoGateway, "no Internet gateway answered the SSDP search within " + std::to_string(o.timeout_ms) +
                                   " ms" + (error ? " (error " + std::to_string(error) + ")" : ""));
    std::unique_ptr<UPNPDev, void (*)(UPNPDev*)> list(devs, freeUPNPDevlist);
    UPNPUrls urls{};
    IGDdatas data{};
    char lan[64] = {};
    int r = UPNP_GetValidIGD(devs, &urls, &data, lan, sizeof lan);
    if (r == 0) return err(kNoGateway, "UPnP devices answered, none of them an Internet gateway");
    std::unique_ptr<UPNPUrls, void (*)(UPNPUrls*)> own(&urls, FreeUPNPUrls);
    // 2: an IGD that says it is not connected; it may still map (and the
    // external address it gives decides). 3: some other UPnP device.
    if (r == 3 || !urls.controlURL || !*urls.controlURL)
        return err(kNoGateway, "UPnP devices answered, none of them an Internet gateway");
    return Igd{urls.controlURL, data.first.servicetype, lan};
}

Result<std::string> external_address(const Igd& g) {
    char ext[64] = {};
    int r = UPNP_GetExternalIPAddress(g.control_url.c_str(), g.service_type.c_str(), ext);
    if (r != UPNPCOMMAND_SUCCESS) return err(kRefused, "GetExternalIPAddress failed: " + upnp_error(r));
    std::string host(ext, strnlen(ext, sizeof ext));
    in_addr a{};
    if (inet_pton(AF_INET, host.c_str(), &a) != 1)  // it goes into our records: an address, nothing else
        return err(kRefused, "the gateway's external address '" + host.substr(0, 40) + "' is not an IPv4 address");
    if (a.s_addr == 0) return err(kRefused, "the gateway has no external address");
    return host;
}

// AddPortMapping for one public port; a permanent lease where the IGD takes no other.
int add(const Igd& g, const Options& o, Protocol p, std::uint16_t ext, std::uint16_t in, std::uint32_t* lease) {
    auto ext_s = std::to_string(ext), in_s = std::to_string(in);
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease_s = std::to_string(*lease);
        int r = UPNP_AddPortMapping(g.control_url.c_str(), g.service_type.c_str(), ext_s.c_str(), in_s.c_str(),
                                    g.lan_addr.c_str(), o.description.c_str(), protocol_name(p), nullptr,
                                    lease_s.c_str());
        if (r != kOnlyPermanentLeases || *lease == 0) return r;
        *lease = 0;
    }
    return kOnlyPermanentLeases;
}

Result<Mapping> map_on(const Igd& g, const Options& o, Protocol p, std::uint16_t internal, std::uint16_t wanted) {
    auto ext = external_address(g);
    if (!ext) return std::move(ext).take_error();
    Mapping m;
    m.method = Method::Upnp;
    m.protocol = p;
    m.external_host = *ext;
    m.internal_port = internal;
    m.internal_host = g.lan_addr;
    m.control_url = g.control_url;
    m.service_type = g.service_type;
    // The wanted port, then a few random ones above 1024 if another host
    // holds it (IGDv1 has no "any port" request that every router takes).
    std::minstd_rand rng(std::random_device{}());
    std::uint16_t port = wanted ? wanted : internal;
    int r = 0;
    for (int attempt = 0; attempt < 6; ++attempt) {
        std::uint32_t lease = o.lease_s;
        r = add(g, o, p, port, internal, &lease);
        if (r == UPNPCOMMAND_SUCCESS) {
            m.external_port = port;
            m.lease_s = lease;
            return m;
        }
        if (r != kConflictInMappingEntry) break;
        port = static_cast<std::uint16_t>(20'000 + rng() % 40'000);
    }
    return err(kRefused, "AddPortMapping " + std::string(protocol_name(p)) + " " + std::to_string(internal) +
                             " refused: " + upnp_error(r));
}

}  // namespace

Result<Mapping> upnp_map(const Options& o, Protocol p, std::uint16_t internal, std::uint16_t wanted) {
    auto g = discover(o);
    if (!g) return std::move(g).take_error();
    return map_on(*g, o, p, internal, wanted);
}

Result<Mapping> upnp_renew(const Options& o, const Mapping& m) {
    Igd g{m.control_url, m.service_type, m.internal_host};
    auto r = map_on(g, o, m.protocol, m.internal_port, m.external_port);
    if (r || r.code() != kRefused) return r;
    return upnp_map(o, m.protocol, m.internal_port, m.external_port);  // the IGD moved or restarted
}

Status upnp_unmap(const Mapping& m) {
    auto port = std::to_string(m.external_port);
    int r = UPNP_DeletePortMapping(m.control_url.c_str(), m.service_type.c_str(), port.c_str(),
                                   protocol_name(m.protocol), nullptr);
    if (r != UPNPCOMMAND_SUCCESS) return err(kRefused, "DeletePortMapping: " + upnp_error(r));
    return {};
}

}  // namespace ps::portmap::detail
