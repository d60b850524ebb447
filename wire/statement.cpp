#include "wire/statement.hpp"

#include <cstring>
#include <string_view>

#include "core/rollout.hpp"
#include "wire/manifest.hpp"
#include "wire/msgpack_util.hpp"

namespace ps::wire {
namespace {

constexpr std::string_view kTag{"patchswarm/statement/v1\0", 24};
constexpr std::uint32_t kBodyFields = 6;

using detail::BytePacker;
using detail::ByteSink;
using detail::pack_bin;

Bytes encode_body(const Statement& s) {
    Bytes out;
    ByteSink buf{out};
    BytePacker pk(buf);
    pk.pack_array(kBodyFields);
    pk.pack(s.format);
    pk.pack(static_cast<std::uint8_t>(s.kind));
    pk.pack(s.seq);
    pk.pack(s.issued);
    pack_bin(pk, s.payload);
    pack_bin(pk, s.signer);
    return out;
}

Bytes encode_outer(ByteView body, const crypto::Signature& sig) { return detail::encode_signed_pair(body, sig); }

Bytes signing_message(ByteView body) { return detail::tagged_message(kTag, body); }

using detail::get_bin_view;

Result<Statement> fields_from(const msgpack::object& o) {
    if (o.type != msgpack::type::ARRAY) return err("statement: body is not an array");
    const auto& a = o.via.array;
    if (a.size < 1 || a.ptr[0].type != msgpack::type::POSITIVE_INTEGER)
        return err("statement: format is not an integer");
    if (a.ptr[0].via.u64 != kStatementFormat)
        return err("statement: unknown format " + std::to_string(a.ptr[0].via.u64));
    if (a.size != kBodyFields) return err("statement: body has " + std::to_string(a.size) + " fields, expected 6");
    Statement s;
    if (a.ptr[1].type != msgpack::type::POSITIVE_INTEGER) return err("statement: kind is not an integer");
    auto kind = statement_kind(a.ptr[1].via.u64);
    if (!kind) return err("statement: unknown kind " + std::to_string(a.ptr[1].via.u64));
    s.kind = *kind;
    if (a.ptr[2].type != msgpack::type::POSITIVE_INTEGER) return err("statement: seq is not an unsigned integer");
    s.seq = a.ptr[2].via.u64;
    if (a.ptr[3].type == msgpack::type::NEGATIVE_INTEGER) s.issued = a.ptr[3].via.i64;
    else if (a.ptr[3].type == msgpack::type::POSITIVE_INTEGER && a.ptr[3].via.u64 <= INT64_MAX)
        s.issued = static_cast<std::int64_t>(a.ptr[3].via.u64);
    else return err("statement: issued is not a 64-bit integer");
    auto payload = get_bin_view(a.ptr[4]);
    if (!payload || payload->size() > kMaxStatementPayload)
        return err("statement: payload is not a bin of at most " + std::to_string(kMaxStatementPayload) + " bytes");
    s.payload.assign(payload->begin(), payload->end());
    auto signer = get_bin_view(a.ptr[5]);
    if (!signer || signer->size() != s.signer.size()) return err("statement: signer is not a 32-byte bin");
    std::memcpy(s.signer.data(), signer->data(), s.signer.size());
    return s;
}

}  // namespace

std::optional<StatementKind> statement_kind(std::uint64_t v) {
    switch (v) {
        case 1: return StatementKind::RevokeCert;
        case 2: return StatementKind::KeyRotation;
        case 3: return StatementKind::Halt;
        case 4: return StatementKind::Freshness;
        case 5: return StatementKind::Widen;
    }
    return std::nullopt;
}

const char* to_string(StatementKind k) {
    switch (k) {
        case StatementKind::RevokeCert: return "revoke-cert";
        case StatementKind::KeyRotation: return "key-rotation";
        case StatementKind::Halt: return "halt";
        case StatementKind::Freshness: return "freshness";
        case StatementKind::Widen: return "widen";
    }
    return "?";
}

Bytes halt_payload(const std::string& name, std::uint64_t version) {
    Bytes out;
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(version >> (8 * i)));
    out.insert(out.end(), name.begin(), name.end());
    return out;
}

Result<std::pair<std::string, std::uint64_t>> parse_halt_payload(ByteView p) {
    if (p.size() < 9) return err("halt: payload is shorter than a version and a name");
    std::uint64_t version = 0;
    for (int i = 0; i < 8; ++i) version = version << 8 | p[i];
    std::string name(reinterpret_cast<const char*>(p.data() + 8), p.size() - 8);
    if (version == 0) return err("halt: version 0");
    if (!valid_patch_name(name)) return err("halt: invalid patch name");
    return std::make_pair(std::move(name), version);
}

Bytes widen_payload(const Hash32& manifest_id, std::uint32_t fraction) {
    Bytes out(manifest_id.begin(), manifest_id.end());
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(fraction >> (8 * i)));
    return out;
}

Result<Widening> parse_widen_payload(ByteView p) {
    Widening w;
    if (p.size() != w.manifest_id.size() + 4)
        return err("widen: payload is " + std::to_string(p.size()) + " bytes, expected 36 (manifest id, fraction)");
    std::memcpy(w.manifest_id.data(), p.data(), w.manifest_id.size());
    for (std::size_t i = w.manifest_id.size(); i < p.size(); ++i) w.fraction = w.fraction << 8 | p[i];
    if (w.fraction == 0 || w.fraction > core::kWaveAll)
        return err("widen: fraction " + std::to_string(w.fraction) + " is not in 1.." + std::to_string(core::kWaveAll) +
                   " millionths");
    return w;
}

Bytes encode_statement(Statement s, const crypto::SecretKey& secret) {
    s.signer = secret.public_key();
    const Bytes body = encode_body(s);
    return encode_outer(body, crypto::sign(secret, signing_message(body)));
}

Result<Statement> decode_statement(ByteView data) {
    return catch_as_error("statement", [&]() -> Result<Statement> {
        if (data.size() > kMaxStatementBytes)
            return err("statement: " + std::to_string(data.size()) + " bytes is over the " +
                       std::to_string(kMaxStatementBytes) + "-byte limit");
        auto outer = detail::unpack_bounded(
            data, {.array = 2, .map = 0, .str = 0, .bin = kMaxStatementBytes, .ext = 0, .depth = 2}, "statement");
        if (!outer) return std::move(outer).take_error();
        const auto& o = outer->get();
        if (o.type != msgpack::type::ARRAY || o.via.array.size != 2)
            return err("statement: not a [body, signature] pair");
        auto body = get_bin_view(o.via.array.ptr[0]);
        auto sig_bytes = get_bin_view(o.via.array.ptr[1]);
        crypto::Signature sig;
        if (!body) return err("statement: body is not a bin");
        if (!sig_bytes || sig_bytes->size() != sig.size()) return err("statement: signature is not a 64-byte bin");
        std::memcpy(sig.data(), sig_bytes->data(), sig.size());
        auto inner = detail::unpack_bounded(
            *body, {.array = 16, .map = 0, .str = 0, .bin = kMaxStatementPayload, .ext = 0, .depth = 2},
            "statement body");
        if (!inner) return err("statement: " + inner.error());
        auto st = fields_from(inner->get());
        if (!st) return st;
        if (encode_outer(*body, sig) != Bytes(data.begin(), data.end()) ||
            encode_body(*st) != Bytes(body->begin(), body->end()))
            return err("statement: not in canonical encoding");
        if (!crypto::verify(st->signer, signing_message(*body), sig))
            return err("statement: signature does not verify");
        st->signature = sig;
        return st;
    });
}

Hash32 statement_id(ByteView encoded) { return crypto::blake2b({as_bytes("patchswarm/statement-id/v1"), encoded}); }

}  // namespace ps::wire
