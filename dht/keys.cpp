#include "dht/keys.hpp"

#include <algorithm>
#include <map>
#include <string>

#include "crypto/crypto.hpp"

namespace ps::dht {
namespace {

constexpr std::string_view kHolderTag = "patchswarm/holders/v1";

bool is_stale_error(const std::string& reason) {
    return reason.rfind("record: stale", 0) == 0 || reason.rfind("record: issued at", 0) == 0;
}

bool better(const wire::HolderRecord& a, const wire::HolderRecord& b) {
    if (a.seq != b.seq) return a.seq > b.seq;
    return a.issued > b.issued;
}

// A DHT key: the first 20 bytes of a BLAKE2b-256 hash.
Key first_bytes(const Hash32& h) {
    Key k;
    std::copy_n(h.begin(), k.size(), k.begin());
    return k;
}

}  // namespace

Key holder_key(std::string_view domain, const Hash32& manifest_id) {
    static constexpr std::uint8_t zero = 0;
    return first_bytes(crypto::blake2b({as_bytes(kHolderTag), ByteView(&zero, 1), as_bytes(domain),
                                        ByteView(&zero, 1), ByteView(manifest_id)}));
}

Key manifest_key(std::string_view patch_name) {
    static constexpr std::uint8_t zero = 0;
    return first_bytes(crypto::blake2b({as_bytes("patchswarm/manifests/v1"), ByteView(&zero, 1), as_bytes(patch_name)}));
}

Key summary_key(const Hash32& manifest_id) {
    static constexpr std::uint8_t zero = 0;
    return first_bytes(crypto::blake2b({as_bytes("patchswarm/summaries/v1"), ByteView(&zero, 1), ByteView(manifest_id)}));
}

bool summary_fits_key(ByteView value, const Key& key, std::int64_t now_unix, std::int64_t max_age_s,
                      crypto::PublicKey* owner,
                      std::uint64_t* seq) {
    auto s = wire::decode_summary(value, now_unix, max_age_s);
    if (!s || summary_key(s->manifest_id) != key) return false;
    if (owner) *owner = s->node_key;
    if (seq) *seq = s->seq;
    return true;
}

Key statements_key() { return first_bytes(crypto::blake2b(as_bytes("patchswarm/statements/v1"))); }

Key global_holder_key(const Hash32& manifest_id) { return holder_key(kGlobalDomain, manifest_id); }

bool record_matches(const wire::HolderRecord& rec, std::string_view domain, const Hash32& manifest_id) {
    if (rec.manifest_id != manifest_id) return false;
    if (domain == kGlobalDomain) return rec.role == Role::Origin || rec.role == Role::Super;
    return rec.domain == domain;
}

bool record_fits_key(const wire::HolderRecord& rec, const Key& key) {
    if (holder_key(rec.domain, rec.manifest_id) == key) return true;
    return (rec.role == Role::Origin || rec.role == Role::Super) &&
           global_holder_key(rec.manifest_id) == key;
}

std::vector<wire::HolderRecord> select_holders(const std::vector<Bytes>& values, std::string_view domain,
                                               const Hash32& manifest_id, std::int64_t now_unix,
                                               std::int64_t max_age_s, std::size_t max_records,
                                               DropCounts* drops,
                                               const std::function<bool(const wire::HolderRecord&)>& admit) {
    DropCounts local;
    DropCounts& d = drops ? *drops : local;
    std::map<crypto::PublicKey, wire::HolderRecord> best;
    for (const auto& v : values) {
        auto rec = wire::decode_record(v, now_unix, max_age_s);
        if (!rec) {
            (is_stale_error(rec.error()) ? d.stale : d.invalid)++;
            continue;
        }
        if (!record_matches(*rec, domain, manifest_id)) {
            d.misplaced++;
            continue;
        }
        if (admit && !admit(*rec)) {
            d.unenrolled++;
            continue;
        }
        auto [it, inserted] = best.try_emplace(rec->node_key, *rec);
        if (!inserted) {
            d.superseded++;
            if (better(*rec, it->second)) it->second = std::move(*rec);
        }
    }
    std::vector<wire::HolderRecord> out;
    out.reserve(best.size());
    for (auto& [key, rec] : best) out.push_back(std::move(rec));
    if (out.size() > max_records) {
        // A random subset, not the first N by key: node keys are free to mint, so
        // an attacker could otherwise grind keys that always sort first.
        for (std::size_t i = 0; i < max_records; ++i) {
            const std::size_t j = i + crypto::random_u64() % (out.size() - i);
            std::swap(out[i], out[j]);
        }
        d.over_limit += out.size() - max_records;
        out.resize(max_records);
        std::sort(out.begin(), out.end(),
                  [](const auto& a, const auto& b) { return a.node_key < b.node_key; });
    }
    return out;
}

}  // namespace ps::dht
