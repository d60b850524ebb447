#include "node/trust.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

#include "node/keys.hpp"

namespace ps::node {

namespace {

constexpr std::string_view kRotationContext{"patchswarm-key-rotation-v1\0", 27};

std::string key_prefix(const Hash32& id) { return wire::short_hex(id); }

bool parse_lower_hex(std::string_view hex, std::uint8_t* out, std::size_t n) {
    if (hex.size() != 2 * n) return false;
    for (char c : hex)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    auto b = from_hex(hex);
    if (!b) return false;
    std::memcpy(out, b->data(), n);
    return true;
}

// Splits a line on single spaces; returns false on empty fields (double spaces).
std::vector<std::string_view> split_words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (start <= line.size()) {
        auto sp = line.find(' ', start);
        if (sp == std::string_view::npos) sp = line.size();
        out.push_back(line.substr(start, sp - start));
        start = sp + 1;
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------- rotations

Bytes rotation_signing_bytes(const KeyRotation& r) {
    Bytes out(kRotationContext.begin(), kRotationContext.end());
    out.insert(out.end(), r.new_key.begin(), r.new_key.end());
    out.push_back(r.revoke_signer ? 1 : 0);
    auto c = static_cast<std::uint64_t>(r.created);
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(c >> (8 * i)));
    out.insert(out.end(), r.signer.begin(), r.signer.end());
    return out;
}

KeyRotation make_rotation(const crypto::SecretKey& current, const crypto::PublicKey& new_key,
                          bool revoke_signer, std::int64_t now_unix) {
    KeyRotation r;
    r.new_key = new_key;
    r.revoke_signer = revoke_signer;
    r.created = now_unix;
    r.signer = current.public_key();
    r.signature = crypto::sign(current, rotation_signing_bytes(r));
    return r;
}

std::string format_rotation(const KeyRotation& r) {
    return "rotate " + to_hex(r.new_key) + (r.revoke_signer ? " 1 " : " 0 ") +
           std::to_string(r.created) + " " + to_hex(r.signer) + " " + to_hex(r.signature);
}

Result<KeyRotation> parse_rotation(std::string_view line) {
    auto w = split_words(line);
    if (w.size() != 6 || w[0] != "rotate")
        return err(
            "key rotation: expected 'rotate <new key> <0|1> <created> <signer key> "
            "<signature>'");
    KeyRotation r;
    if (!parse_lower_hex(w[1], r.new_key.data(), r.new_key.size()))
        return err("key rotation: new key must be 64 lowercase hex digits");
    if (w[2] != "0" && w[2] != "1") return err("key rotation: revoke flag must be 0 or 1");
    r.revoke_signer = w[2] == "1";
    // Canonical decimal: no sign, no leading zeros, at most 18 digits (fits int64).
    if (w[3].empty() || w[3].size() > 18 || (w[3].size() > 1 && w[3][0] == '0') ||
        !std::all_of(w[3].begin(), w[3].end(), [](char c) { return c >= '0' && c <= '9'; }))
        return err("key rotation: created must be a unix time in decimal");
    r.created = 0;
    for (char c : w[3]) r.created = r.created * 10 + (c - '0');
    if (!parse_lower_hex(w[4], r.signer.data(), r.signer.size()))
        return err("key rotation: signer key must be 64 lowercase hex digits");
    if (!parse_lower_hex(w[5], r.signature.data(), r.signature.size()))
        return err("key rotation: signature must be 128 lowercase hex digits");
    return r;
}

// ---------------------------------------------------------------- TrustStore

TrustStore TrustStore::from_key(const crypto::PublicKey& pk) {
    TrustStore t;
    (void)t.add_anchor(pk);
    return t;
}

Status TrustStore::add_anchor(const crypto::PublicKey& pk) {
    for (auto& a : anchors_)
        if (a == pk) return err("key " + key_prefix(wire::key_id_of(pk)) + " is listed twice");
    if (keys_.size() >= kMaxTrustedKeys)
        return err("more than " + std::to_string(kMaxTrustedKeys) + " keys");
    anchors_.push_back(pk);
    keys_.push_back(Key{pk, wire::key_id_of(pk), false});
    return {};
}

Result<TrustStore> TrustStore::load(const std::string& path) {
    return catch_as_error("trust", [&]() -> Result<TrustStore> {
        auto data = read_file_limited(path, kMaxTrustFileBytes);
        if (!data) return std::move(data).take_error();
        std::string_view text(reinterpret_cast<const char*>(data->data()), data->size());
        auto first = text.substr(0, text.find('\n'));
        if (first == kPublicKeyHeader) {
            auto pk = parse_public_key(text, "public key file " + path);
            if (!pk) return std::move(pk).take_error();
            return from_key(*pk);
        }
        if (first == kTrustFileHeader) return parse_trust_file(text, "trust file " + path);
        return err(path + ": neither a public key file ('" + std::string(kPublicKeyHeader) +
                   "') nor a trust file ('" + kTrustFileHeader + "')");
    });
}

Result<TrustStore> TrustStore::parse_trust_file(std::string_view text, const std::string& what) {
    return catch_as_error("trust file", [&]() -> Result<TrustStore> {
        if (text.size() > kMaxTrustFileBytes) return err(what + ": too large");
        if (text.empty() || text.back() != '\n') return err(what + ": truncated (no final newline)");
        TrustStore t;
        std::size_t lineno = 0, pos = 0;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            auto line = text.substr(pos, nl - pos);
            pos = nl + 1;
            ++lineno;
            auto where = what + " line " + std::to_string(lineno) + ": ";
            if (lineno == 1) {
                if (line != kTrustFileHeader)
                    return err(what + ": first line must be '" + std::string(kTrustFileHeader) + "'");
                continue;
            }
            if (line.empty() || line[0] == '#') continue;
            if (line.substr(0, 4) == "key ") {
                crypto::PublicKey pk;
                if (!parse_lower_hex(line.substr(4), pk.data(), pk.size()))
                    return err(where + "'key' must be followed by 64 lowercase hex digits");
                if (!t.rotations_.empty())
                    return err(where + "'key' lines must come before 'rotate' lines");
                if (auto s = t.add_anchor(pk); !s) return err(where + s.error());
            } else if (line == "require-enrollment") {
                t.require_enrollment_ = true;
            } else if (line.substr(0, 10) == "statement ") {
                auto b = from_hex(line.substr(10));
                if (!b) return err(where + "'statement' must be followed by hex");
                if (auto a = t.apply_statement(*b); !a) return err(where + a.error());
            } else if (line.substr(0, 7) == "rotate ") {
                auto r = parse_rotation(line);
                if (!r) return err(where + r.error());
                if (auto s = t.apply_rotation(*r); !s) return err(where + s.error());
            } else {
                return err(where + "expected 'key', 'rotate', 'require-enrollment', a comment or a blank line");
            }
        }
        if (t.keys_.empty()) return err(what + ": lists no key");
        return t;
    });
}

Result<crypto::PublicKey> TrustStore::signer(const Hash32& key_id) const {
    for (auto& k : keys_) {
        if (k.key_id != key_id) continue;
        if (k.revoked) return err("signing key " + key_prefix(key_id) + " was revoked");
        return k.pk;
    }
    return err("unknown signing key " + key_prefix(key_id));
}

bool TrustStore::trusts(const crypto::PublicKey& pk) const {
    for (auto& k : keys_)
        if (k.pk == pk) return !k.revoked;
    return false;
}

Status TrustStore::apply_rotation(const KeyRotation& r) {
    for (auto& done : rotations_)
        if (done.signature == r.signature && done.signer == r.signer && done.new_key == r.new_key &&
            done.revoke_signer == r.revoke_signer && done.created == r.created)
            return {};  // replay of an applied statement: nothing to do
    auto signer_id = wire::key_id_of(r.signer);
    auto s = signer(signer_id);
    if (!s) return err("key rotation: " + s.error());
    if (!crypto::verify(r.signer, rotation_signing_bytes(r), r.signature))
        return err("key rotation: bad signature");
    if (r.new_key == r.signer) return err("key rotation: new key is the signing key");
    if (rotations_.size() >= kMaxRotations)
        return err("key rotation: more than " + std::to_string(kMaxRotations) + " rotations");
    Key* existing = nullptr;
    for (auto& k : keys_)
        if (k.pk == r.new_key) existing = &k;
    if (existing && existing->revoked)
        return err("key rotation: new key " + key_prefix(existing->key_id) + " was revoked");
    if (!existing && keys_.size() >= kMaxTrustedKeys)
        return err("key rotation: more than " + std::to_string(kMaxTrustedKeys) + " keys");
    // All checks passed: mutate.
    if (!existing) keys_.push_back(Key{r.new_key, wire::key_id_of(r.new_key), false});
    if (r.revoke_signer)
        for (auto& k : keys_)
            if (k.pk == r.signer) k.revoked = true;
    rotations_.push_back(r);
    log_.push_back(format_rotation(r));
    return {};
}

std::string TrustStore::to_text() const {
    std::string out = std::string(kTrustFileHeader) + "\n";
    for (auto& a : anchors_) out += "key " + to_hex(a) + "\n";
    if (require_enrollment_) out += "require-enrollment\n";
    for (auto& l : log_) out += l + "\n";
    return out;
}

// ---------------------------------------------------------------- verification

std::string format_utc(std::int64_t t) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    if (!gmtime_r(&tt, &tm)) return std::to_string(t);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Result<VerifiedManifest> verify_manifest_bytes(ByteView bytes, const TrustStore& trust,
                                               std::int64_t now_unix) {
    return catch_as_error("manifest", [&]() -> Result<VerifiedManifest> {
        auto m = wire::decode_manifest(bytes);
        if (!m) return std::move(m).take_error();
        auto pk = trust.signer(m->key_id);
        if (!pk) return std::move(pk).take_error();
        if (auto s = wire::check_signature(*m, *pk); !s) return std::move(s).take_error();
        if (trust.halted(m->name, m->version))
            return err("manifest " + m->name + " v" + std::to_string(m->version) + " was halted by the operator");
        if (m->created > now_unix + kMaxManifestClockSkewSeconds)
            return err("manifest created at " + format_utc(m->created) + " lies in the future (now " +
                       format_utc(now_unix) + ")");
        if (now_unix >= m->expires)
            return err("manifest expired at " + format_utc(m->expires) + " (now " +
                       format_utc(now_unix) + ")");
        VerifiedManifest v;
        v.manifest = std::move(*m);
        v.id = wire::manifest_id(bytes);
        v.bytes.assign(bytes.begin(), bytes.end());
        for (auto& k : trust.keys())
            if (k.revoked) v.revoked_keys.push_back(k.key_id);
        return v;
    });
}

std::function<std::optional<std::uint64_t>(ByteView)> manifest_version_check(TrustStore trust) {
    return manifest_version_check(std::make_shared<SharedTrust>(std::move(trust)));
}

std::function<std::optional<std::uint64_t>(ByteView)> manifest_version_check(std::shared_ptr<SharedTrust> trust) {
    return [trust](ByteView bytes) -> std::optional<std::uint64_t> {
        try {
            auto v = verify_manifest_bytes(bytes, *trust->get(), static_cast<std::int64_t>(std::time(nullptr)));
            if (!v) return std::nullopt;
            return v->manifest.version;
        } catch (...) {  // bad_alloc: the value is dropped, the caller goes on
            return std::nullopt;
        }
    };
}

Result<VerifiedManifest> load_verified_manifest(const std::string& path, const TrustStore& trust,
                                                std::int64_t now_unix) {
    auto data = read_file_limited(path, wire::kMaxManifestBytes);
    if (!data) return std::move(data).take_error();
    return verify_manifest_bytes(*data, trust, now_unix);
}

// ---------------------------------------------------------------- rollback guard

namespace {

// Longest line: name (64) + u64 (20) + two hashes (2 x 64) + separators.
constexpr std::size_t kMaxRollbackFileBytes = kMaxRollbackEntries * 224 + 64;

bool parse_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

bool is_revoked(const Hash32& key_id, const std::vector<Hash32>& revoked) {
    if (key_id == Hash32{}) return false;  // unknown signer (v1 entry): never lifted
    return std::find(revoked.begin(), revoked.end(), key_id) != revoked.end();
}

bool same_entry(const RollbackGuard::Entry& a, const RollbackGuard::Entry& b) {
    return a.version == b.version && a.id == b.id && a.key_id == b.key_id;
}

}  // namespace

Result<RollbackGuard> RollbackGuard::load(const std::string& path) {
    return catch_as_error("rollback state", [&]() -> Result<RollbackGuard> {
        struct stat st;
        if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {  // first start
            RollbackGuard g;
            g.path_ = path;
            return g;
        }
        auto data = read_file_limited(path, kMaxRollbackFileBytes);
        if (!data) return err("rollback state: " + data.error());
        return parse(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()), path);
    });
}

Result<RollbackGuard> RollbackGuard::parse(std::string_view text, const std::string& path) {
    return catch_as_error("rollback state", [&]() -> Result<RollbackGuard> {
        RollbackGuard g;
        g.path_ = path;
        std::string what = "rollback state " + path;
        if (text.size() > kMaxRollbackFileBytes) return err(what + ": too large");
        if (text.empty() || text.back() != '\n') return err(what + ": truncated (no final newline)");
        std::size_t pos = 0, lineno = 0, lines = 0;
        bool v1 = false;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            auto line = text.substr(pos, nl - pos);
            pos = nl + 1;
            ++lineno;
            if (lineno == 1) {
                v1 = line == kRollbackFileHeaderV1;
                if (!v1 && line != kRollbackFileHeader)
                    return err(what + ": first line must be '" + std::string(kRollbackFileHeader) + "' (or '" +
                               kRollbackFileHeaderV1 + "')");
                continue;
            }
            auto where = what + " line " + std::to_string(lineno) + ": ";
            auto w = split_words(line);
            Entry e;
            if (w.size() != (v1 ? 3u : 4u) || !parse_u64(w[1], e.version) || e.version == 0 ||
                !parse_lower_hex(w[2], e.id.data(), e.id.size()) ||
                (!v1 && !parse_lower_hex(w[3], e.key_id.data(), e.key_id.size())))
                return err(where + (v1 ? "expected '<name> <version> <manifest id>'"
                                       : "expected '<name> <version> <manifest id> <key id>'"));
            if (!wire::valid_patch_name(w[0])) return err(where + "not a valid patch name");
            if (++lines > kMaxRollbackEntries) return err(what + ": too many entries");
            auto& list = g.entries_[std::string(w[0])];
            for (auto& other : list)
                if (other.key_id == e.key_id) return err(where + "name and key listed twice");
            list.push_back(e);
        }
        return g;
    });
}

const RollbackGuard::Entry* RollbackGuard::find(const std::string& name) const {
    return floor(name, {});
}

const RollbackGuard::Entry* RollbackGuard::floor(const std::string& name, const std::vector<Hash32>& revoked) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) return nullptr;
    const Entry* best = nullptr;
    for (auto& e : it->second)
        if (!is_revoked(e.key_id, revoked) && (!best || e.version > best->version)) best = &e;
    return best;
}

Status RollbackGuard::check(const VerifiedManifest& v) const {
    const auto& m = v.manifest;
    const Entry* e = floor(m.name, v.revoked_keys);
    if (!e) return {};
    if (m.version < e->version)
        return err("rollback: " + m.name + " version " + std::to_string(m.version) +
                   " is older than accepted version " + std::to_string(e->version));
    if (m.version == e->version && v.id != e->id)
        return err("rollback: " + m.name + " version " + std::to_string(m.version) +
                   " was already accepted as a different manifest " + wire::short_hex(e->id));
    if (m.version - e->version > kMaxVersionJump)
        return err("rollback: " + m.name + " version " + std::to_string(m.version) + " jumps more than " +
                   std::to_string(kMaxVersionJump) + " past accepted version " + std::to_string(e->version));
    return {};
}

Status RollbackGuard::accept(const VerifiedManifest& v) {
    return catch_as_error("rollback state", [&]() -> Status {
        if (auto s = check(v); !s) return s;
        const auto& m = v.manifest;
        auto next = entries_;
        auto& list = next[m.name];
        // Versions of revoked keys no longer count; v1 entries (signer unknown)
        // are superseded by a higher version under a known key.
        std::erase_if(list, [&](const Entry& e) {
            return is_revoked(e.key_id, v.revoked_keys) || (e.key_id == Hash32{} && e.version < m.version) ||
                   e.key_id == m.key_id;
        });
        list.push_back(Entry{m.version, v.id, m.key_id});
        auto unchanged = [&] {
            auto it = entries_.find(m.name);
            if (it == entries_.end() || it->second.size() != list.size()) return false;
            for (auto& e : list)
                if (std::none_of(it->second.begin(), it->second.end(), [&](const Entry& o) { return same_entry(e, o); }))
                    return false;
            return true;
        };
        if (unchanged()) return {};  // the same manifest again
        std::size_t lines = 0;
        for (auto& [name, l] : next) lines += l.size();
        if (lines > kMaxRollbackEntries)
            return err("rollback state: already tracks " + std::to_string(kMaxRollbackEntries) +
                       " patch names and keys");
        RollbackGuard after;
        after.entries_ = std::move(next);
        if (auto s = write_file_atomic(path_, as_bytes(after.to_text()), 0600); !s)
            return err("rollback state: " + s.error());
        entries_ = std::move(after.entries_);
        return {};
    });
}

std::string RollbackGuard::to_text() const {
    std::string text = std::string(kRollbackFileHeader) + "\n";
    for (auto& [name, l] : entries_)
        for (auto& e : l)
            text += name + " " + std::to_string(e.version) + " " + to_hex(e.id) + " " + to_hex(e.key_id) + "\n";
    return text;
}

Result<wire::Manifest> manifest_for_file(const std::string& path, wire::Manifest m) {
    auto d = digest_file(path, m.segment_size, m.format);
    if (!d) return std::move(d).take_error();
    m.total_size = d->total_size;
    m.segment_hashes = std::move(d->segment_hashes);
    m.file_hash = d->file_hash;
    if (auto s = wire::validate_manifest(m); !s) return std::move(s).take_error();
    return m;
}

Status check_patch_file(const wire::Manifest& m, const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        return err("cannot stat " + path + ": " + std::strerror(errno));
    if (static_cast<std::uint64_t>(st.st_size) != m.total_size)
        return err("file " + path + " is " + std::to_string(st.st_size) +
                   " bytes, the manifest says " + std::to_string(m.total_size));
    auto d = digest_file(path, m.segment_size, m.format);
    if (!d) return std::move(d).take_error();
    if (d->total_size != m.total_size || d->segment_hashes.size() != m.segment_hashes.size())
        return err("file " + path + " changed size while being read");
    for (std::size_t i = 0; i < m.segment_hashes.size(); ++i)
        if (!crypto::equal(d->segment_hashes[i], m.segment_hashes[i]))
            return err("segment " + std::to_string(i) + " does not match its hash");
    if (!crypto::equal(d->file_hash, m.file_hash)) return err("file does not match its hash");
    return {};
}

}  // namespace ps::node
