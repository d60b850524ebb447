#include "wire/cert.hpp"

#include <cstring>
#include <optional>
#include <string_view>

#include "wire/msgpack_util.hpp"

namespace ps::wire {
namespace {

constexpr std::string_view kCertTag{"patchswarm/node-cert/v1\0", 24};
constexpr std::uint32_t kBodyFields = 7;

using detail::BytePacker;
using detail::ByteSink;
using detail::pack_bin;

// msgpack-c always picks the smallest encoding of each integer and length:
// that, and the fixed field order, make the encoding canonical.
Bytes encode_body(const NodeCert& c) {
    Bytes out;
    ByteSink buf{out};
    BytePacker pk(buf);
    pk.pack_array(kBodyFields);
    pk.pack(c.format);
    pack_bin(pk, c.node_key);
    pk.pack(static_cast<std::uint8_t>(c.role));
    pk.pack(c.domain);
    pk.pack(c.issued);
    pk.pack(c.expires);
    pack_bin(pk, c.operator_key);
    return out;
}

Bytes encode_outer(ByteView body, const crypto::Signature& sig) { return detail::encode_signed_pair(body, sig); }

Bytes signing_message(ByteView body) { return detail::tagged_message(kCertTag, body); }

using detail::get_bin;

using detail::get_int;

Result<NodeCert> fields_from(const msgpack::object& o) {
    if (o.type != msgpack::type::ARRAY) return err("certificate: body is not an array");
    const auto& a = o.via.array;
    if (a.size < 1 || a.ptr[0].type != msgpack::type::POSITIVE_INTEGER)
        return err("certificate: format is not an integer");
    if (a.ptr[0].via.u64 != kCertFormat)
        return err("certificate: unknown format " + std::to_string(a.ptr[0].via.u64));
    if (a.size != kBodyFields)
        return err("certificate: body has " + std::to_string(a.size) + " fields, expected 7");
    NodeCert c;
    if (!get_bin(a.ptr[1], c.node_key)) return err("certificate: node_key is not a 32-byte bin");
    if (a.ptr[2].type != msgpack::type::POSITIVE_INTEGER || !role_from_wire(a.ptr[2].via.u64))
        return err("certificate: unknown role");
    c.role = *role_from_wire(a.ptr[2].via.u64);
    if (a.ptr[3].type != msgpack::type::STR || a.ptr[3].via.str.size > 63)
        return err("certificate: domain is not a string of at most 63 bytes");
    c.domain.assign(a.ptr[3].via.str.ptr, a.ptr[3].via.str.size);
    auto issued = get_int(a.ptr[4]);
    auto expires = get_int(a.ptr[5]);
    if (!issued || !expires) return err("certificate: issued/expires are not 64-bit integers");
    c.issued = *issued;
    c.expires = *expires;
    if (!get_bin(a.ptr[6], c.operator_key)) return err("certificate: operator_key is not a 32-byte bin");
    return c;
}

}  // namespace

Bytes encode_cert(NodeCert c, const crypto::SecretKey& operator_secret) {
    c.operator_key = operator_secret.public_key();
    const Bytes body = encode_body(c);
    return encode_outer(body, crypto::sign(operator_secret, signing_message(body)));
}

Result<NodeCert> decode_cert(ByteView data) {
    return catch_as_error("certificate", [&]() -> Result<NodeCert> {
        if (data.size() > kMaxCertBytes)
            return err("certificate: " + std::to_string(data.size()) + " bytes is over the " +
                       std::to_string(kMaxCertBytes) + "-byte limit");
        auto outer = detail::unpack_bounded(
            data, {.array = 2, .map = 0, .str = 0, .bin = kMaxCertBytes, .ext = 0, .depth = 2}, "certificate");
        if (!outer) return std::move(outer).take_error();
        const auto& o = outer->get();
        if (o.type != msgpack::type::ARRAY || o.via.array.size != 2 || o.via.array.ptr[0].type != msgpack::type::BIN)
            return err("certificate: not a [body, signature] pair");
        const auto& b = o.via.array.ptr[0].via.bin;
        const ByteView body(reinterpret_cast<const std::uint8_t*>(b.ptr), b.size);
        crypto::Signature sig;
        if (!get_bin(o.via.array.ptr[1], sig)) return err("certificate: signature is not a 64-byte bin");
        auto inner = detail::unpack_bounded(
            body, {.array = 16, .map = 0, .str = 63, .bin = 32, .ext = 0, .depth = 2}, "certificate body");
        if (!inner) return err("certificate: " + inner.error());
        auto cert = fields_from(inner->get());
        if (!cert) return cert;
        if (encode_outer(body, sig) != Bytes(data.begin(), data.end()) ||
            encode_body(*cert) != Bytes(body.begin(), body.end()))
            return err("certificate: not in canonical encoding");
        if (!valid_domain(cert->domain)) return err("certificate: invalid domain '" + cert->domain + "'");
        const __int128 life = static_cast<__int128>(cert->expires) - cert->issued;
        if (life <= 0) return err("certificate: expires before it is issued");
        if (life > kMaxCertLifetimeSeconds) return err("certificate: valid for more than 10 years");
        if (!crypto::verify(cert->operator_key, signing_message(body), sig))
            return err("certificate: signature does not verify");
        cert->signature = sig;
        return cert;
    });
}

}  // namespace ps::wire
