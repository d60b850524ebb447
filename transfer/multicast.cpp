#include "transfer/multicast.hpp"

#include <uv.h>

#include <cstring>

#include "transfer/guard.hpp"

namespace ps::transfer {

struct MulticastSocket::Handle {
    uv_udp_t udp;
    sockaddr_in group{};
    OnDatagram on_datagram;
    char buf[kMaxDatagram + 1];  // one more: a larger datagram shows as truncated
};

namespace {

struct SendReq {
    uv_udp_send_t req;
    Bytes data;
};

std::string uv_text(const char* step, int rc) { return std::string("multicast: ") + step + ": " + uv_strerror(rc); }

}  // namespace

Result<std::unique_ptr<MulticastSocket>> MulticastSocket::open(Loop& loop, const std::string& group,
                                                                 std::uint16_t port, OnDatagram on_datagram) {
    std::unique_ptr<MulticastSocket> s(new MulticastSocket);
    s->h_ = new Handle;
    s->h_->udp.data = s->h_;
    s->h_->on_datagram = std::move(on_datagram);
    uv_udp_init(static_cast<uv_loop_t*>(loop.raw()), &s->h_->udp);  // closed by ~MulticastSocket from here on
    if (int rc = uv_ip4_addr(group.c_str(), port, &s->h_->group); rc != 0) return err(uv_text("group address", rc));
    sockaddr_in any{};
    uv_ip4_addr("0.0.0.0", port, &any);
    if (int rc = uv_udp_bind(&s->h_->udp, reinterpret_cast<const sockaddr*>(&any), UV_UDP_REUSEADDR); rc != 0)
        return err(uv_text(("bind 0.0.0.0:" + std::to_string(port)).c_str(), rc));
    if (int rc = uv_udp_set_membership(&s->h_->udp, group.c_str(), nullptr, UV_JOIN_GROUP); rc != 0)
        return err(uv_text(("join " + group).c_str(), rc));
    uv_udp_set_multicast_ttl(&s->h_->udp, 1);
    uv_udp_set_multicast_loop(&s->h_->udp, 1);
    auto alloc = [](uv_handle_t* h, std::size_t, uv_buf_t* b) {
        auto* self = static_cast<Handle*>(h->data);
        *b = uv_buf_init(self->buf, sizeof self->buf);
    };
    auto recv = [](uv_udp_t* u, ssize_t n, const uv_buf_t* b, const sockaddr* from, unsigned flags) {
        auto* self = static_cast<Handle*>(u->data);
        if (n <= 0 || !from || from->sa_family != AF_INET || (flags & UV_UDP_PARTIAL) ||
            static_cast<std::size_t>(n) > kMaxDatagram)
            return;
        char ip[INET_ADDRSTRLEN] = {};
        uv_ip4_name(reinterpret_cast<const sockaddr_in*>(from), ip, sizeof ip);
        ByteView data(reinterpret_cast<const std::uint8_t*>(b->base), static_cast<std::size_t>(n));
        guard_report("multicast datagram", [&] { self->on_datagram(data, ip); });
    };
    if (int rc = uv_udp_recv_start(&s->h_->udp, alloc, recv); rc != 0) return err(uv_text("receive", rc));
    return s;
}

MulticastSocket::~MulticastSocket() {
    if (!h_) return;
    uv_udp_recv_stop(&h_->udp);
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->udp), [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

bool MulticastSocket::send(ByteView data) {
    auto* r = new SendReq;
    r->req.data = r;
    r->data.assign(data.begin(), data.end());
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(r->data.data()), static_cast<unsigned>(r->data.size()));
    int rc = uv_udp_send(&r->req, &h_->udp, &b, 1, reinterpret_cast<const sockaddr*>(&h_->group),
                         [](uv_udp_send_t* req, int) { delete static_cast<SendReq*>(req->data); });
    if (rc != 0) delete r;
    return rc == 0;
}

}  // namespace ps::transfer
