#include "wire/messages.hpp"

#include <algorithm>
#include <cstring>

#include "wire/msgpack_util.hpp"
#include "wire/statement.hpp"

namespace ps::wire {
namespace {

using detail::unpack_bounded;
using detail::UnpackLimits;
using detail::ByteSink;
using detail::pack_bin;

// Decoding helpers over one msgpack array. Each returns false on a type or
// range mismatch; the caller turns that into one error naming the message.
struct Fields {
    const msgpack::object* v;
    std::uint32_t n;

    bool uint(std::uint32_t i, std::uint64_t max, std::uint64_t& out) const {
        if (i >= n || v[i].type != msgpack::type::POSITIVE_INTEGER) return false;
        if (v[i].via.u64 > max) return false;
        out = v[i].via.u64;
        return true;
    }
    bool u32(std::uint32_t i, std::uint32_t& out) const {
        std::uint64_t x;
        if (!uint(i, 0xffffffffu, x)) return false;
        out = static_cast<std::uint32_t>(x);
        return true;
    }
    bool bin(std::uint32_t i, std::size_t max, ByteView& out) const {
        if (i >= n || v[i].type != msgpack::type::BIN || v[i].via.bin.size > max) return false;
        out = {reinterpret_cast<const std::uint8_t*>(v[i].via.bin.ptr), v[i].via.bin.size};
        return true;
    }
    template <std::size_t N>
    bool fixed(std::uint32_t i, std::array<std::uint8_t, N>& out) const {
        ByteView b;
        if (!bin(i, N, b) || b.size() != N) return false;
        std::memcpy(out.data(), b.data(), N);
        return true;
    }
    bool str(std::uint32_t i, std::size_t max, std::string& out) const {
        if (i >= n || v[i].type != msgpack::type::STR || v[i].via.str.size > max) return false;
        out.assign(v[i].via.str.ptr, v[i].via.str.size);
        return true;
    }
};

constexpr std::size_t kMaxByeReason = 256;
constexpr std::size_t kMaxDomain = 63;

}  // namespace

void encode_message(const Message& m, Bytes& out) {
    ByteSink sink{out};
    msgpack::packer<ByteSink> pk(sink);
    std::visit(
        [&](auto& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, MsgHave>) {
                pk.pack_array(3).pack(std::uint8_t(MsgType::Have));
                pack_bin(pk, msg.manifest);
                pack_bin(pk, msg.bitfield);
            } else if constexpr (std::is_same_v<T, MsgHaveOne>) {
                pk.pack_array(3).pack(std::uint8_t(MsgType::HaveOne));
                pack_bin(pk, msg.manifest);
                pk.pack(msg.segment);
            } else if constexpr (std::is_same_v<T, MsgRequest>) {
                pk.pack_array(3).pack(std::uint8_t(MsgType::Request));
                pack_bin(pk, msg.manifest);
                pk.pack(msg.segment);
            } else if constexpr (std::is_same_v<T, MsgData>) {
                pk.pack_array(5).pack(std::uint8_t(MsgType::Data));
                pack_bin(pk, msg.manifest);
                pk.pack(msg.segment);
                pk.pack(msg.offset);
                pack_bin(pk, msg.data);
            } else if constexpr (std::is_same_v<T, MsgReject>) {
                pk.pack_array(4).pack(std::uint8_t(MsgType::Reject));
                pack_bin(pk, msg.manifest);
                pk.pack(msg.segment);
                pk.pack(msg.reason);
            } else if constexpr (std::is_same_v<T, MsgCancel>) {
                pk.pack_array(3).pack(std::uint8_t(MsgType::Cancel));
                pack_bin(pk, msg.manifest);
                pk.pack(msg.segment);
            } else if constexpr (std::is_same_v<T, MsgKeepalive>) {
                pk.pack_array(1).pack(std::uint8_t(MsgType::Keepalive));
            } else if constexpr (std::is_same_v<T, MsgBye>) {
                pk.pack_array(2).pack(std::uint8_t(MsgType::Bye));
                pk.pack(msg.reason.substr(0, kMaxByeReason));
            } else if constexpr (std::is_same_v<T, MsgAnnounce>) {
                pk.pack_array(2).pack(std::uint8_t(MsgType::Announce));
                pack_bin(pk, msg.manifest);
            } else if constexpr (std::is_same_v<T, MsgStatement>) {
                pk.pack_array(2).pack(std::uint8_t(MsgType::Statement));
                pack_bin(pk, msg.statement);
            } else if constexpr (std::is_same_v<T, MsgAssign>) {
                pk.pack_array(3).pack(std::uint8_t(MsgType::Assign));
                pack_bin(pk, msg.manifest);
                pack_bin(pk, msg.share);
            } else if constexpr (std::is_same_v<T, MsgPeers>) {
                std::size_t n = std::min(msg.contacts.size(), kMaxContacts);
                pk.pack_array(2).pack(std::uint8_t(MsgType::Peers));
                pk.pack_array(static_cast<std::uint32_t>(n));
                for (std::size_t i = 0; i < n; ++i) {
                    auto& c = msg.contacts[i];
                    pk.pack_array(5);
                    pack_bin(pk, c.key);
                    pk.pack(c.host);
                    pk.pack(c.port);
                    pk.pack(static_cast<std::uint8_t>(c.role));
                    pk.pack(c.domain);
                }
            }
        },
        m);
}

// The contact list of a Peers message: [key, host, port, role, domain] each.
static Result<Message> decode_peers(const msgpack::object_array& arr) {
    auto bad = [] { return err("message: malformed peers entry"); };
    MsgPeers m;
    for (std::uint32_t i = 0; i < arr.size; ++i) {
        const auto& e = arr.ptr[i];
        if (e.type != msgpack::type::ARRAY || e.via.array.size != 5) return bad();
        Fields g{e.via.array.ptr, e.via.array.size};
        Contact c;
        std::uint64_t port, role;
        if (!g.fixed(0, c.key) || !g.str(1, 64, c.host) || !g.uint(2, 65535, port) || !g.uint(3, 255, role) ||
            !g.str(4, kMaxDomain, c.domain))
            return bad();
        auto r = role_from_wire(role);
        if (!r || !valid_domain(c.domain) || c.host.empty() || port == 0) return bad();
        c.port = static_cast<std::uint16_t>(port);
        c.role = *r;
        m.contacts.push_back(std::move(c));
    }
    return Message{std::move(m)};
}

Result<Message> decode_message(ByteView frame) {
    if (frame.size() > kMaxFrame) return err("message: frame of " + std::to_string(frame.size()) + " bytes is over the limit");
    auto oh = unpack_bounded(frame, {.array = kMaxContacts, .map = 0, .str = kMaxByeReason, .bin = kMaxFrame, .ext = 0, .depth = 3},
                             "message");
    if (!oh) return std::move(oh).take_error();
    const msgpack::object& o = oh->get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size == 0) return err("message: not an array");
    Fields f{o.via.array.ptr, o.via.array.size};
    std::uint64_t type;
    if (!f.uint(0, 255, type)) return err("message: bad type field");
    auto bad = [&](const char* name) { return err(std::string("message: malformed ") + name); };
    auto count = [&](std::uint32_t n) { return f.n == n; };
    switch (static_cast<MsgType>(type)) {
        case MsgType::Have: {
            MsgHave m;
            ByteView bf;
            if (!count(3) || !f.fixed(1, m.manifest) || !f.bin(2, kMaxFrame, bf)) return bad("have");
            m.bitfield.assign(bf.begin(), bf.end());
            return Message{std::move(m)};
        }
        case MsgType::HaveOne: {
            MsgHaveOne m;
            if (!count(3) || !f.fixed(1, m.manifest) || !f.u32(2, m.segment)) return bad("have-one");
            return Message{m};
        }
        case MsgType::Request: {
            MsgRequest m;
            if (!count(3) || !f.fixed(1, m.manifest) || !f.u32(2, m.segment)) return bad("request");
            return Message{m};
        }
        case MsgType::Data: {
            MsgData m;
            if (!count(5) || !f.fixed(1, m.manifest) || !f.u32(2, m.segment) || !f.u32(3, m.offset) ||
                !f.bin(4, kMaxChunk, m.data) || m.data.empty())
                return bad("data");
            // The referenced bytes live in `frame`, which outlives the handle.
            return Message{m};
        }
        case MsgType::Reject: {
            MsgReject m;
            std::uint64_t r;
            if (!count(4) || !f.fixed(1, m.manifest) || !f.u32(2, m.segment) || !f.uint(3, 255, r)) return bad("reject");
            m.reason = static_cast<std::uint8_t>(r);
            return Message{m};
        }
        case MsgType::Cancel: {
            MsgCancel m;
            if (!count(3) || !f.fixed(1, m.manifest) || !f.u32(2, m.segment)) return bad("cancel");
            return Message{m};
        }
        case MsgType::Keepalive:
            if (!count(1)) return bad("keepalive");
            return Message{MsgKeepalive{}};
        case MsgType::Bye: {
            MsgBye m;
            if (!count(2) || !f.str(1, kMaxByeReason, m.reason)) return bad("bye");
            return Message{std::move(m)};
        }
        case MsgType::Announce: {
            MsgAnnounce m;
            if (!count(2) || !f.bin(1, kMaxFrame, m.manifest) || m.manifest.empty()) return bad("announce");
            return Message{m};
        }
        case MsgType::Statement:
            if (MsgStatement m; count(2) && f.bin(1, kMaxStatementBytes, m.statement) && !m.statement.empty()) return Message{m};
            return bad("statement");
        case MsgType::Assign: {
            MsgAssign m;
            ByteView bf;
            if (!count(3) || !f.fixed(1, m.manifest) || !f.bin(2, kMaxFrame, bf)) return bad("assign");
            m.share.assign(bf.begin(), bf.end());
            return Message{std::move(m)};
        }
        case MsgType::Peers:
            if (!count(2) || f.v[1].type != msgpack::type::ARRAY) return bad("peers");
            return decode_peers(f.v[1].via.array);
    }
    return err("message: unknown type " + std::to_string(type));
}

// ---- handshake ----

namespace {
constexpr std::uint8_t kMagic[4] = {'P', 'S', 'W', 'M'};
constexpr std::string_view kAuthTag = "patchswarm/auth/v1";
}  // namespace

std::array<std::uint8_t, kHelloSize> encode_hello(const Hello& h) {
    std::array<std::uint8_t, kHelloSize> out{};
    std::memcpy(out.data(), kMagic, 4);
    out[4] = static_cast<std::uint8_t>(h.version >> 8);
    out[5] = static_cast<std::uint8_t>(h.version);
    std::memcpy(out.data() + 8, h.ephemeral.data(), 32);
    return out;
}

Result<Hello> decode_hello(ByteView b) {
    if (b.size() != kHelloSize) return err("handshake: hello has the wrong size");
    if (std::memcmp(b.data(), kMagic, 4) != 0) return err("handshake: not a patchswarm peer (bad magic)");
    Hello h;
    h.version = static_cast<std::uint16_t>(b[4] << 8 | b[5]);
    std::memcpy(h.ephemeral.data(), b.data() + 8, 32);
    return h;
}

Bytes auth_payload(const Hash32& transcript, bool from_dialer, Role role, const std::string& domain) {
    // Sized up front (g++ 12 misreports vector::insert growth under -Warray-bounds).
    Bytes p(kAuthTag.size() + transcript.size() + 3 + domain.size());
    std::size_t at = 0;
    auto put = [&](const void* src, std::size_t n) {
        std::memcpy(p.data() + at, src, n);
        at += n;
    };
    put(kAuthTag.data(), kAuthTag.size());
    put(transcript.data(), transcript.size());
    const std::uint8_t mid[3] = {std::uint8_t(from_dialer ? 'D' : 'A'), static_cast<std::uint8_t>(role),
                                 static_cast<std::uint8_t>(domain.size())};
    put(mid, 3);
    put(domain.data(), domain.size());
    return p;
}

Bytes encode_auth(const Auth& a) {
    Bytes out;
    ByteSink sink{out};
    msgpack::packer<ByteSink> pk(sink);
    pk.pack_array(5);
    pack_bin(pk, a.node_key);
    pk.pack(static_cast<std::uint8_t>(a.role));
    pk.pack(a.domain);
    pack_bin(pk, a.sig);
    pack_bin(pk, a.cert);
    return out;
}

Result<Auth> decode_auth(ByteView b) {
    auto oh = unpack_bounded(b, {.array = 5, .map = 0, .str = kMaxDomain, .bin = kMaxCertBytes, .ext = 0, .depth = 1},
                             "auth");
    if (!oh) return std::move(oh).take_error();
    const msgpack::object& o = oh->get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 5) return err("auth: not a 5-element array");
    Fields f{o.via.array.ptr, o.via.array.size};
    Auth a;
    std::uint64_t role;
    ByteView cert;
    if (!f.fixed(0, a.node_key) || !f.uint(1, 255, role) || !f.str(2, kMaxDomain, a.domain) || !f.fixed(3, a.sig) ||
        !f.bin(4, kMaxCertBytes, cert))
        return err("auth: malformed fields");
    a.cert.assign(cert.begin(), cert.end());
    auto r = role_from_wire(role);
    if (!r) return err("auth: unknown role " + std::to_string(role));
    a.role = *r;
    if (!valid_domain(a.domain)) return err("auth: invalid domain name");
    return a;
}

}  // namespace ps::wire
