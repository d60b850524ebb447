// TrustStore's handlers of signed operator statements (wire/statement.hpp):
// the kinds that change trust or are kept with it (halt, widen: the trust file
// is where a node keeps statements across restarts). A new such kind is a case
// here; freshness, which is not the operator's, is handled by the node.
#include <algorithm>
#include <cstring>

#include "node/keys.hpp"
#include "node/trust.hpp"
#include "wire/statement.hpp"

namespace ps::node {

Bytes rotation_payload(const KeyRotation& r) {
    Bytes out(r.new_key.begin(), r.new_key.end());
    out.push_back(r.revoke_signer ? 1 : 0);
    auto c = static_cast<std::uint64_t>(r.created);
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(c >> (8 * i)));
    out.insert(out.end(), r.signature.begin(), r.signature.end());
    return out;
}

Result<KeyRotation> rotation_from_payload(ByteView p, const crypto::PublicKey& signer) {
    if (p.size() != 32 + 1 + 8 + 64) return err("key rotation: payload is not 105 bytes");
    if (p[32] > 1) return err("key rotation: revoke flag must be 0 or 1");
    KeyRotation r;
    std::memcpy(r.new_key.data(), p.data(), 32);
    r.revoke_signer = p[32] == 1;
    std::uint64_t c = 0;
    for (int i = 0; i < 8; ++i) c = c << 8 | p[33 + i];
    r.created = static_cast<std::int64_t>(c);
    std::memcpy(r.signature.data(), p.data() + 41, 64);
    r.signer = signer;
    return r;
}

std::string format_statement_file(ByteView statement) {
    return std::string(kStatementFileHeader) + "\n" + to_hex(statement) + "\n";
}

Result<Bytes> load_statement_file(const std::string& path) {
    auto data = read_file_limited(path, 4096);
    if (!data) return err(path + ": " + data.error());
    std::string_view text(reinterpret_cast<const char*>(data->data()), data->size());
    const std::string header = std::string(kStatementFileHeader) + "\n";
    if (text.substr(0, header.size()) != header) return err(path + ": first line must be '" + kStatementFileHeader + "'");
    text.remove_prefix(header.size());
    if (text.empty() || text.back() != '\n') return err(path + ": truncated (no final newline)");
    text.remove_suffix(1);
    auto bytes = from_hex(text);
    if (!bytes) return err(path + ": second line is not hex");
    if (auto st = wire::decode_statement(*bytes); !st) return err(path + ": " + st.error());
    return std::move(*bytes);
}

bool TrustStore::halted(const std::string& name, std::uint64_t version) const {
    return std::find(halted_.begin(), halted_.end(), std::make_pair(name, version)) != halted_.end();
}

bool TrustStore::node_revoked(const crypto::PublicKey& node_key) const {
    return std::find(revoked_nodes_.begin(), revoked_nodes_.end(), node_key) != revoked_nodes_.end();
}

Result<bool> TrustStore::apply_statement(ByteView encoded) {
    auto st = wire::decode_statement(encoded);
    if (!st) return std::move(st).take_error();
    const Hash32 id = wire::statement_id(encoded);
    if (std::find(statement_ids_.begin(), statement_ids_.end(), id) != statement_ids_.end()) return false;
    if (!trusts(st->signer)) return err("statement: signed by a key that is not trusted or was revoked");
    switch (st->kind) {
        case wire::StatementKind::KeyRotation: {
            auto r = rotation_from_payload(st->payload, st->signer);
            if (!r) return std::move(r).take_error();
            const auto before = rotations_.size();
            if (auto s = apply_rotation(*r); !s) return std::move(s).take_error();
            statement_ids_.push_back(id);
            return rotations_.size() != before;
        }
        case wire::StatementKind::RevokeCert: {
            crypto::PublicKey node{};
            if (st->payload.size() != node.size()) return err("certificate revocation: payload is not a 32-byte node key");
            if (statement_ids_.size() >= kMaxStatements)
                return err("statement: more than " + std::to_string(kMaxStatements) + " statements");
            std::memcpy(node.data(), st->payload.data(), node.size());
            statement_ids_.push_back(id);
            log_.push_back("statement " + to_hex(encoded));
            if (node_revoked(node)) return false;
            revoked_nodes_.push_back(node);
            return true;
        }
        case wire::StatementKind::Halt: {
            auto h = wire::parse_halt_payload(st->payload);
            if (!h) return std::move(h).take_error();
            if (statement_ids_.size() >= kMaxStatements)
                return err("statement: more than " + std::to_string(kMaxStatements) + " statements");
            statement_ids_.push_back(id);
            log_.push_back("statement " + to_hex(encoded));
            if (halted(h->first, h->second)) return false;
            halted_.push_back(std::move(*h));
            return true;
        }
        case wire::StatementKind::Widen: return apply_widen(encoded, st->payload);
        case wire::StatementKind::Freshness: break;  // the node's business (node_statements.cpp)
    }
    return err(std::string("statement: kind ") + wire::to_string(st->kind) + " does not change trust");
}

// Only the highest widening per manifest is kept, and only its line stays in
// the text: a replayed or lower one changes nothing, and widening a release
// step by step does not grow the trust file.
Result<bool> TrustStore::apply_widen(ByteView encoded, ByteView payload) {
    auto w = wire::parse_widen_payload(payload);
    if (!w) return std::move(w).take_error();
    auto it = widened_.find(w->manifest_id);
    if (it != widened_.end() && it->second.fraction >= w->fraction) return false;
    if (it == widened_.end() && widened_.size() >= kMaxStatements)
        return err("widen: more than " + std::to_string(kMaxStatements) + " releases widened");
    std::string line = "statement " + to_hex(encoded);
    if (it != widened_.end()) std::erase(log_, it->second.line);
    log_.push_back(line);
    widened_[w->manifest_id] = Widened{w->fraction, std::move(line)};
    return true;
}

std::uint32_t TrustStore::widened(const Hash32& manifest_id) const {
    auto it = widened_.find(manifest_id);
    return it == widened_.end() ? 0 : it->second.fraction;
}

std::map<Hash32, std::uint32_t> TrustStore::widenings() const {
    std::map<Hash32, std::uint32_t> out;
    for (auto& [id, w] : widened_) out[id] = w.fraction;
    return out;
}

std::function<bool(ByteView)> statement_signer_check(std::shared_ptr<SharedTrust> trust) {
    return [trust](ByteView bytes) {
        try {
            auto st = wire::decode_statement(bytes);
            return st && trust->get()->trusts(st->signer);
        } catch (...) {  // bad_alloc: the value is dropped, the caller goes on
            return false;
        }
    };
}

}  // namespace ps::node
