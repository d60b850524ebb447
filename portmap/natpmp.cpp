// NAT-PMP (RFC 6886) through libnatpmp: UDP requests to the default gateway's
// port 5351, retried by the library with a doubling timeout; we bound the
// whole exchange by Options::timeout_ms.
// strnatpmperr() is declared only with this defined (Debian builds it in).
#define ENABLE_STRNATPMPERR
#include <natpmp.h>
#include <arpa/inet.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "portmap/portmap_impl.hpp"

namespace ps::portmap::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string natpmp_error(int code) {
    const char* s = strnatpmperr(code);
    return (s ? std::string(s) : std::string("error")) + " (" + std::to_string(code) + ")";
}

// One natpmp_t, closed on every path.
struct Session {
    natpmp_t n{};
    bool open = false;
    ~Session() {
        if (open) closenatpmp(&n);
    }
};

// Waits for the answer to the request just sent. poll(), not select(): the
// node may hold more than 1024 descriptors, and FD_SET past that corrupts the
// stack.
int await(natpmp_t* n, natpmpresp_t* resp, Clock::time_point deadline) {
    for (;;) {
        timeval tv{};
        getnatpmprequesttimeout(n, &tv);
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return NATPMP_ERR_NOGATEWAYSUPPORT;
        long wait = tv.tv_sec * 1000 + tv.tv_usec / 1000;
        pollfd p{n->s, POLLIN, 0};
        poll(&p, 1, static_cast<int>(std::min<long>(std::max<long>(wait, 1), left)));
        int r = readnatpmpresponseorretry(n, resp);
        if (r != NATPMP_TRYAGAIN) return r;
    }
}

Result<Session*> open(Session& s) {
    int r = initnatpmp(&s.n, 0, 0);
    if (r < 0) return err(kNoGateway, "no default gateway to ask: " + natpmp_error(r));
    s.open = true;
    return &s;
}

std::string gateway_text(const natpmp_t& n) {
    char buf[INET_ADDRSTRLEN] = {};
    in_addr a{};
    a.s_addr = n.gateway;
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
}

Error failure(const natpmp_t& n, const char* what, int r) {
    // No answer at all, or an ICMP port unreachable: the gateway does not
    // speak NAT-PMP. Anything else is an answer that says no.
    bool silent = r == NATPMP_ERR_NOGATEWAYSUPPORT || r == NATPMP_ERR_RECVFROM || r == NATPMP_ERR_SENDERR;
    return err(silent ? kNoGateway : kRefused, "gateway " + gateway_text(n) + ": " + what + ": " + natpmp_error(r));
}

int protocol_code(Protocol p) { return p == Protocol::Tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP; }

}  // namespace

Result<Mapping> natpmp_map(const Options& o, Protocol p, std::uint16_t internal, std::uint16_t wanted) {
    Session s;
    if (auto r = open(s); !r) return std::move(r).take_error();
    auto deadline = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
    natpmpresp_t resp{};
    int r = sendpublicaddressrequest(&s.n);
    if (r >= 0) r = await(&s.n, &resp, deadline);
    if (r < 0) return failure(s.n, "public address", r);
    char ext[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &resp.pnu.publicaddress.addr, ext, sizeof ext);
    if (resp.pnu.publicaddress.addr.s_addr == 0) return err(kRefused, "gateway " + gateway_text(s.n) + " has no public address");

    deadline = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
    r = sendnewportmappingrequest(&s.n, protocol_code(p), internal, wanted ? wanted : internal, o.lease_s);
    if (r >= 0) r = await(&s.n, &resp, deadline);
    if (r < 0) return failure(s.n, "port mapping", r);
    Mapping m;
    m.method = Method::Natpmp;
    m.protocol = p;
    m.external_host = ext;
    m.internal_port = internal;
    m.external_port = resp.pnu.newportmapping.mappedpublicport;  // the gateway may grant another port
    m.lease_s = resp.pnu.newportmapping.lifetime;
    if (m.external_port == 0) return err(kRefused, "gateway " + gateway_text(s.n) + " granted port 0");
    return m;
}

Status natpmp_unmap(const Options& o, const Mapping& m) {
    Session s;
    if (auto r = open(s); !r) return std::move(r).take_error();
    natpmpresp_t resp{};
    // RFC 6886 3.4: lifetime 0 and suggested port 0 delete the mapping.
    int r = sendnewportmappingrequest(&s.n, protocol_code(m.protocol), m.internal_port, 0, 0);
    if (r >= 0) r = await(&s.n, &resp, Clock::now() + std::chrono::milliseconds(o.timeout_ms));
    if (r < 0) return failure(s.n, "delete", r);
    return {};
}

}  // namespace ps::portmap::detail
