#include "wire/record.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>
#include <string_view>

#include "wire/msgpack_util.hpp"

namespace ps::wire {
namespace {

// Domain separation: a record signature can never be confused with a manifest
// or handshake signature made by the same key.
constexpr std::string_view kRecordTag{"patchswarm/holder-record/v1\0", 28};
constexpr std::uint32_t kBodyFields = 11;  // format 1; format 2 adds the certificate

using namespace detail;

// The canonical body: a fixed-order array; msgpack-c always picks the smallest
// encoding for each integer and length, which is what makes it canonical.
Bytes encode_body(const HolderRecord& r, const crypto::PublicKey& node_key) {
    msgpack::sbuffer buf;
    Packer pk(&buf);
    const bool with_cert = !r.cert.empty();
    pk.pack_array(kBodyFields + (with_cert ? 1 : 0));
    pk.pack(with_cert ? kRecordFormatCert : kRecordFormat);
    pk.pack(static_cast<std::uint8_t>(r.role));
    pk.pack(r.domain);
    pack_bin(pk, r.manifest_id);
    pk.pack(r.host);
    pk.pack(r.port);
    pack_bin(pk, node_key);
    pk.pack(r.segments_held);
    pk.pack(r.segment_count);
    pk.pack(r.issued);
    pk.pack(r.seq);
    if (with_cert) pack_bin(pk, r.cert);
    return detail::to_bytes(buf);
}

Bytes encode_outer(ByteView body, const crypto::Signature& sig) { return encode_signed_pair(body, sig); }

Bytes signing_message(ByteView body) { return tagged_message(kRecordTag, body); }

Status check_host(const std::string& host) {
    if (host.empty() || host.size() > kMaxHostLength)
        return err("record: host must be 1.." + std::to_string(kMaxHostLength) + " characters");
    char canon[INET6_ADDRSTRLEN] = {};
    in_addr a4{};
    in6_addr a6{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
        const auto* b = reinterpret_cast<const std::uint8_t*>(&a4);
        // 0/8 is "this network", 224/4 multicast, 240/4 reserved and broadcast.
        if (b[0] == 0 || b[0] >= 224)
            return err("record: host " + host + " is not a unicast address");
        inet_ntop(AF_INET, &a4, canon, sizeof canon);
    } else if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
        const auto* b = a6.s6_addr;
        static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (IN6_IS_ADDR_UNSPECIFIED(&a6) || b[0] == 0xff)
            return err("record: host " + host + " is not a unicast address");
        // Link-local needs a scope id that means nothing on another device.
        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
            return err("record: host " + host + " is link-local");
        // One address, one spelling: IPv4 peers advertise plain IPv4.
        if (std::memcmp(b, mapped, sizeof mapped) == 0)
            return err("record: host " + host + " is IPv4-mapped; use the IPv4 literal");
        inet_ntop(AF_INET6, &a6, canon, sizeof canon);
    } else {
        return err("record: host is not an IPv4 or IPv6 literal");
    }
    if (host != canon) return err("record: host " + host + " is not in canonical form (" + canon + ")");
    return {};
}

// Reads the 11 body fields; shape errors only (values are checked later).
Result<HolderRecord> fields_from(const msgpack::object& o) {
    if (o.type != msgpack::type::ARRAY) return err("record: body is not an array");
    const auto& a = o.via.array;
    if (a.size < 1) return err("record: empty body");
    auto format = get_uint(a.ptr[0], UINT32_MAX);
    if (!format) return err("record: format is not an integer");
    if (*format != kRecordFormat && *format != kRecordFormatCert)
        return err("record: unknown format " + std::to_string(*format));
    const std::uint32_t fields = *format == kRecordFormatCert ? kBodyFields + 1 : kBodyFields;
    if (a.size != fields)
        return err("record: body has " + std::to_string(a.size) + " fields, expected " + std::to_string(fields));
    HolderRecord r;
    r.format = static_cast<std::uint32_t>(*format);
    auto role_num = get_uint(a.ptr[1], 255);
    if (!role_num) return err("record: role is not a small integer");
    auto role = role_from_wire(*role_num);
    if (!role) return err("record: unknown role " + std::to_string(*role_num));
    r.role = *role;
    auto domain = get_str(a.ptr[2], 63);
    if (!domain) return err("record: domain is not a string of at most 63 bytes");
    r.domain = std::move(*domain);
    if (!get_bin(a.ptr[3], r.manifest_id)) return err("record: manifest_id is not a 32-byte bin");
    auto host = get_str(a.ptr[4], kMaxHostLength);
    if (!host) return err("record: host is not a string of at most 45 bytes");
    r.host = std::move(*host);
    auto port = get_uint(a.ptr[5], UINT16_MAX);
    if (!port) return err("record: port is not a 16-bit integer");
    r.port = static_cast<std::uint16_t>(*port);
    if (!get_bin(a.ptr[6], r.node_key)) return err("record: node_key is not a 32-byte bin");
    auto held = get_uint(a.ptr[7], UINT32_MAX);
    auto count = get_uint(a.ptr[8], UINT32_MAX);
    if (!held || !count) return err("record: segment counts are not 32-bit integers");
    r.segments_held = static_cast<std::uint32_t>(*held);
    r.segment_count = static_cast<std::uint32_t>(*count);
    auto issued = get_int(a.ptr[9]);
    if (!issued) return err("record: issued is not a 64-bit integer");
    r.issued = *issued;
    auto seq = get_uint(a.ptr[10], UINT64_MAX);
    if (!seq) return err("record: seq is not an unsigned integer");
    r.seq = *seq;
    if (*format == kRecordFormatCert) {
        auto cert = get_bin_view(a.ptr[11]);
        if (!cert || cert->empty()) return err("record: certificate is not a non-empty bin");
        r.cert.assign(cert->begin(), cert->end());
    }
    return r;
}

}  // namespace

Status validate_record_fields(const HolderRecord& r) {
    if (r.format != kRecordFormat && r.format != kRecordFormatCert)
        return err("record: unknown format " + std::to_string(r.format));
    if (!role_from_wire(static_cast<std::uint8_t>(r.role))) return err("record: unknown role");
    if (!valid_domain(r.domain)) return err("record: invalid domain '" + r.domain.substr(0, 63) + "'");
    if (auto s = check_host(r.host); !s) return s;
    if (r.port < kMinRecordPort)
        return err("record: port " + std::to_string(r.port) + " is below " +
                   std::to_string(kMinRecordPort));
    if (r.segment_count > kMaxRecordSegments)
        return err("record: segment_count " + std::to_string(r.segment_count) + " is over " +
                   std::to_string(kMaxRecordSegments));
    if (r.segments_held > r.segment_count)
        return err("record: segments_held " + std::to_string(r.segments_held) +
                   " exceeds segment_count " + std::to_string(r.segment_count));
    return {};
}

Bytes encode_record(const HolderRecord& r, const crypto::SecretKey& node_secret) {
    const auto pk = node_secret.public_key();
    const Bytes body = encode_body(r, pk);
    const auto sig = crypto::sign(node_secret, signing_message(body));
    return encode_outer(body, sig);
}

Result<HolderRecord> decode_record(ByteView data, std::int64_t now_unix, std::int64_t max_age_s) {
    return catch_as_error("record", [&]() -> Result<HolderRecord> {
        if (data.size() > kMaxRecordBytes)
            return err("record: " + std::to_string(data.size()) + " bytes is over the " +
                       std::to_string(kMaxRecordBytes) + "-byte limit");
        detail::UnpackLimits outer_lim{.array = 2, .map = 0, .str = 0, .bin = kMaxRecordBytes,
                                       .ext = 0, .depth = 2};
        auto outer = detail::unpack_bounded(data, outer_lim, "record");
        if (!outer) return std::move(outer).take_error();
        const auto& o = outer->get();
        if (o.type != msgpack::type::ARRAY || o.via.array.size != 2)
            return err("record: not a [body, signature] pair");
        auto body = get_bin_view(o.via.array.ptr[0]);
        crypto::Signature sig;
        if (!body) return err("record: body is not a bin");
        if (!get_bin(o.via.array.ptr[1], sig)) return err("record: signature is not a 64-byte bin");

        // 32 array slots, not 11: room to report a newer format as such.
        detail::UnpackLimits body_lim{.array = 32, .map = 0, .str = 63, .bin = kMaxCertBytes,
                                      .ext = 0, .depth = 2};
        auto inner = detail::unpack_bounded(*body, body_lim, "record body");
        if (!inner) return err("record: " + inner.error());
        auto rec = fields_from(inner->get());
        if (!rec) return rec;
        HolderRecord& r = *rec;

        // Canonical form: the bytes must be exactly what encode_record produces, so a
        // record has one encoding (no re-encoded duplicates, no smuggled variants).
        if (encode_outer(*body, sig) != Bytes(data.begin(), data.end()) ||
            encode_body(r, r.node_key) != Bytes(body->begin(), body->end()))
            return err("record: not in canonical encoding");

        if (auto s = validate_record_fields(r); !s) return std::move(s).take_error();
        if (!r.cert.empty()) {
            auto cert = decode_cert(r.cert);
            if (!cert) return err("record: " + cert.error());
            if (cert->node_key != r.node_key || cert->role != r.role || cert->domain != r.domain)
                return err("record: certificate is for another node, role or domain");
        }
        // Compared in 128 bits: issued is attacker-chosen and may be INT64_MIN/MAX.
        const __int128 age = static_cast<__int128>(now_unix) - r.issued;
        if (age > max_age_s)
            return err("record: stale (issued at " + std::to_string(r.issued) + ", now " +
                       std::to_string(now_unix) + ", limit " + std::to_string(max_age_s) + " s)");
        if (-age > kMaxRecordClockSkewSeconds)
            return err("record: issued at " + std::to_string(r.issued) + " is in the future (now " +
                       std::to_string(now_unix) + ")");
        // Last: the expensive check runs only on well-formed, fresh records.
        if (!crypto::verify(r.node_key, signing_message(*body), sig))
            return err("record: signature does not verify");
        return rec;
    });
}

}  // namespace ps::wire
