#include "portmap/portmap.hpp"

#include "portmap/portmap_impl.hpp"

namespace ps::portmap {

const char* method_name(Method m) { return m == Method::Upnp ? "upnp" : "natpmp"; }
const char* protocol_name(Protocol p) { return p == Protocol::Tcp ? "TCP" : "UDP"; }

Result<Mapping> map(const Options& o, Protocol protocol, std::uint16_t internal_port) {
    if (internal_port == 0) return err("port mapping: no port to map (the listener has none yet)");
    if (!o.upnp && !o.natpmp) return err(kNoGateway, "port mapping: off");
    std::string why;
    bool refused = false;
    auto attempt = [&](const char* name, Result<Mapping> r) -> Result<Mapping> {
        if (r) return r;
        refused |= r.code() == kRefused;
        why += (why.empty() ? "" : "; ") + std::string(name) + ": " + r.error();
        return err("");
    };
    return catch_as_error("port mapping", [&]() -> Result<Mapping> {
        if (o.upnp)
            if (auto r = attempt("upnp", detail::upnp_map(o, protocol, internal_port, internal_port))) return r;
        if (o.natpmp)
            if (auto r = attempt("natpmp", detail::natpmp_map(o, protocol, internal_port, internal_port))) return r;
        return err(refused ? kRefused : kNoGateway, "port mapping failed: " + why);
    });
}

Result<Mapping> renew(const Options& o, const Mapping& m) {
    return catch_as_error("port mapping renewal", [&]() -> Result<Mapping> {
        if (m.method == Method::Upnp) return detail::upnp_renew(o, m);
        return detail::natpmp_map(o, m.protocol, m.internal_port, m.external_port);
    });
}

Status unmap(const Options& o, const Mapping& m) {
    return catch_as_error("port unmapping", [&]() -> Status {
        return m.method == Method::Upnp ? detail::upnp_unmap(m) : detail::natpmp_unmap(o, m);
    });
}

std::string describe(const Mapping& m) {
    return std::string(method_name(m.method)) + " " + m.external_host + ":" + std::to_string(m.external_port) + " -> " +
           (m.internal_host.empty() ? std::string("this host") : m.internal_host) + ":" +
           std::to_string(m.internal_port) + " " + protocol_name(m.protocol) + ", lease " +
           (m.lease_s ? std::to_string(m.lease_s) + " s" : std::string("permanent"));
}

}  // namespace ps::portmap
