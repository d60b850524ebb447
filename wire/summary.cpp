#include "wire/summary.hpp"

#include <string_view>

#include "core/types.hpp"
#include "wire/msgpack_util.hpp"
#include "wire/record.hpp"

namespace ps::wire {
namespace {

using namespace detail;

constexpr std::string_view kSummaryTag{"patchswarm/domain-summary/v1\0", 29};
constexpr std::uint32_t kSummaryFields = 12;

Bytes encode_body(const DomainSummary& s, const crypto::PublicKey& node_key) {
    msgpack::sbuffer buf;
    Packer pk(&buf);
    pk.pack_array(kSummaryFields);
    pk.pack(s.format);
    pk.pack(s.domain);
    pack_bin(pk, s.manifest_id);
    pack_bin(pk, node_key);
    pk.pack(s.issued);
    pk.pack(s.seq);
    pk.pack(s.online);
    pk.pack(s.holders);
    pk.pack(s.complete);
    pk.pack(s.bytes_imported);
    pk.pack(s.bans);
    pk.pack_array(static_cast<std::uint32_t>(s.rejected.size() * 2));
    for (auto& [name, n] : s.rejected) {
        pk.pack(name);
        pk.pack(n);
    }
    return to_bytes(buf);
}

bool valid_counter_name(const std::string& n) {
    if (n.empty() || n.size() > kMaxCounterName) return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
    return true;
}

Result<std::vector<std::pair<std::string, std::uint64_t>>> counters_from(const msgpack::object& o) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size % 2 || o.via.array.size > 2 * kMaxSummaryCounters)
        return err("summary: rejected is not a flat [name, count, ...] array of at most " +
                   std::to_string(kMaxSummaryCounters) + " pairs");
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (std::uint32_t i = 0; i < o.via.array.size; i += 2) {
        auto name = get_str(o.via.array.ptr[i], kMaxCounterName);
        auto n = get_uint(o.via.array.ptr[i + 1], UINT64_MAX);
        if (!name || !n) return err("summary: a rejected counter is not a short name and an unsigned count");
        out.emplace_back(std::move(*name), *n);
    }
    return out;
}

Result<DomainSummary> fields_from(const msgpack::object& o) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 1) return err("summary: body is not an array");
    const auto& a = o.via.array;
    auto format = get_uint(a.ptr[0], UINT32_MAX);
    if (!format) return err("summary: format is not an integer");
    if (*format != kSummaryFormat) return err("summary: unknown format " + std::to_string(*format));
    if (a.size != kSummaryFields)
        return err("summary: body has " + std::to_string(a.size) + " fields, expected " + std::to_string(kSummaryFields));
    DomainSummary s;
    auto domain = get_str(a.ptr[1], 63);
    if (!domain) return err("summary: domain is not a string of at most 63 bytes");
    s.domain = std::move(*domain);
    if (!get_bin(a.ptr[2], s.manifest_id)) return err("summary: manifest_id is not a 32-byte bin");
    if (!get_bin(a.ptr[3], s.node_key)) return err("summary: node_key is not a 32-byte bin");
    auto issued = get_int(a.ptr[4]);
    auto seq = get_uint(a.ptr[5], UINT64_MAX);
    if (!issued || !seq) return err("summary: issued or seq is not a 64-bit integer");
    s.issued = *issued;
    s.seq = *seq;
    auto online = get_uint(a.ptr[6], UINT32_MAX), holders = get_uint(a.ptr[7], UINT32_MAX),
         complete = get_uint(a.ptr[8], UINT32_MAX), bans = get_uint(a.ptr[10], UINT32_MAX);
    auto imported = get_uint(a.ptr[9], UINT64_MAX);
    if (!online || !holders || !complete || !bans || !imported)
        return err("summary: a count is not an unsigned integer of its width");
    s.online = std::uint32_t(*online);
    s.holders = std::uint32_t(*holders);
    s.complete = std::uint32_t(*complete);
    s.bans = std::uint32_t(*bans);
    s.bytes_imported = *imported;
    auto rejected = counters_from(a.ptr[11]);
    if (!rejected) return std::move(rejected).take_error();
    s.rejected = std::move(*rejected);
    return s;
}

}  // namespace

Status validate_summary_fields(const DomainSummary& s) {
    if (s.format != kSummaryFormat) return err("summary: unknown format " + std::to_string(s.format));
    if (!valid_domain(s.domain)) return err("summary: invalid domain '" + s.domain.substr(0, 63) + "'");
    for (auto n : {s.online, s.holders})
        if (n > kMaxSummaryNodes)
            return err("summary: a node count of " + std::to_string(n) + " is over " + std::to_string(kMaxSummaryNodes));
    if (s.complete > s.holders)
        return err("summary: complete " + std::to_string(s.complete) + " exceeds holders " + std::to_string(s.holders));
    if (s.rejected.size() > kMaxSummaryCounters)
        return err("summary: more than " + std::to_string(kMaxSummaryCounters) + " rejected counters");
    for (std::size_t i = 0; i < s.rejected.size(); ++i) {
        if (!valid_counter_name(s.rejected[i].first))
            return err("summary: counter name '" + s.rejected[i].first.substr(0, kMaxCounterName) + "' is not [a-z_]{1,24}");
        if (i && !(s.rejected[i - 1].first < s.rejected[i].first))
            return err("summary: rejected counters are not sorted and distinct");
    }
    return {};
}

Bytes encode_summary(const DomainSummary& s, const crypto::SecretKey& node_secret) {
    const Bytes body = encode_body(s, node_secret.public_key());
    const auto sig = crypto::sign(node_secret, tagged_message(kSummaryTag, body));
    return encode_signed_pair(body, sig);
}

Result<DomainSummary> decode_summary(ByteView data, std::int64_t now_unix, std::int64_t max_age_s) {
    return catch_as_error("summary", [&]() -> Result<DomainSummary> {
        if (data.size() > kMaxSummaryBytes)
            return err("summary: " + std::to_string(data.size()) + " bytes is over the " +
                       std::to_string(kMaxSummaryBytes) + "-byte limit");
        UnpackLimits outer_lim{.array = 2, .map = 0, .str = 0, .bin = kMaxSummaryBytes, .ext = 0, .depth = 2};
        auto outer = unpack_bounded(data, outer_lim, "summary");
        if (!outer) return std::move(outer).take_error();
        const auto& o = outer->get();
        if (o.type != msgpack::type::ARRAY || o.via.array.size != 2) return err("summary: not a [body, signature] pair");
        auto body = get_bin_view(o.via.array.ptr[0]);
        crypto::Signature sig;
        if (!body) return err("summary: body is not a bin");
        if (!get_bin(o.via.array.ptr[1], sig)) return err("summary: signature is not a 64-byte bin");
        UnpackLimits body_lim{.array = 2 * kMaxSummaryCounters, .map = 0, .str = 63, .bin = 32, .ext = 0, .depth = 3};
        auto inner = unpack_bounded(*body, body_lim, "summary body");
        if (!inner) return err("summary: " + inner.error());
        auto sum = fields_from(inner->get());
        if (!sum) return sum;
        if (encode_signed_pair(*body, sig) != Bytes(data.begin(), data.end()) ||
            encode_body(*sum, sum->node_key) != Bytes(body->begin(), body->end()))
            return err("summary: not in canonical encoding");
        if (auto st = validate_summary_fields(*sum); !st) return std::move(st).take_error();
        const __int128 age = static_cast<__int128>(now_unix) - sum->issued;
        if (age > max_age_s)
            return err("summary: stale (issued at " + std::to_string(sum->issued) + ", now " + std::to_string(now_unix) + ")");
        if (-age > kMaxRecordClockSkewSeconds)
            return err("summary: issued at " + std::to_string(sum->issued) + " is in the future (now " +
                       std::to_string(now_unix) + ")");
        if (!crypto::verify(sum->node_key, tagged_message(kSummaryTag, *body), sig))
            return err("summary: signature does not verify");
        return sum;
    });
}

}  // namespace ps::wire
