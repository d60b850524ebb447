#include "wire/manifest.hpp"

#include <algorithm>

#include <cstring>
#include <string_view>

#include "wire/msgpack_util.hpp"

namespace ps::wire {

namespace {

// Field order of the msgpack array; the signed encoding appends the signature.
// A manifest with rollout fields (urgent, waves) has two more, before key_id's
// successor, the signature: 14 unsigned / 15 signed.
constexpr std::uint32_t kUnsignedFields = 12;
constexpr std::uint32_t kSignedFields = kUnsignedFields + 1;
constexpr std::uint32_t kRolloutFields = 2;

bool has_rollout(const Manifest& m) { return m.urgent || !m.waves.empty(); }

void put_be(Bytes& out, std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_be(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | p[i];
    return v;
}

Bytes encode_waves(const std::vector<core::WaveStep>& waves) {
    Bytes out;
    for (const auto& w : waves) {
        put_be(out, static_cast<std::uint64_t>(w.after_s), 8);
        put_be(out, w.fraction, 4);
    }
    return out;
}
constexpr std::string_view kSigningContext{"patchswarm-manifest-v1\0", 23};

bool valid_name(std::string_view s) {
    if (s.empty() || s.size() > kMaxNameLength) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
    }
    return true;
}

bool valid_label(std::string_view s) {
    if (s.size() > kMaxLabelLength) return false;
    for (char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_bin(Packer& pk, const std::uint8_t* p, size_t n) {
    pk.pack_bin(static_cast<std::uint32_t>(n));
    pk.pack_bin_body(reinterpret_cast<const char*>(p), static_cast<std::uint32_t>(n));
}

void pack_str(Packer& pk, const std::string& s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_fields(Packer& pk, const Manifest& m, bool with_signature) {
    std::uint32_t extra = has_rollout(m) ? kRolloutFields : 0;
    pk.pack_array((with_signature ? kSignedFields : kUnsignedFields) + extra);
    pk.pack_uint32(m.format);
    pack_str(pk, m.name);
    pk.pack_uint64(m.version);
    pack_str(pk, m.label);
    pk.pack_int64(m.created);
    pk.pack_int64(m.expires);
    pk.pack_uint64(m.total_size);
    pk.pack_uint32(m.segment_size);
    // One flat bin of 32-byte hashes: measured 5.8x faster to decode than an
    // array of 32-byte bins, and bounded by a single bin limit.
    pk.pack_bin(static_cast<std::uint32_t>(m.segment_hashes.size() * 32));
    for (const auto& h : m.segment_hashes)
        pk.pack_bin_body(reinterpret_cast<const char*>(h.data()), 32);
    pack_bin(pk, m.file_hash.data(), m.file_hash.size());
    if (m.mandatory)
        pk.pack_true();
    else
        pk.pack_false();
    pack_bin(pk, m.key_id.data(), m.key_id.size());
    if (extra) {
        if (m.urgent)
            pk.pack_true();
        else
            pk.pack_false();
        Bytes w = encode_waves(m.waves);
        pack_bin(pk, w.data(), w.size());
    }
    if (with_signature) pack_bin(pk, m.signature.data(), m.signature.size());
}

Bytes to_bytes(const msgpack::sbuffer& b) {
    auto p = reinterpret_cast<const std::uint8_t*>(b.data());
    return Bytes(p, p + b.size());
}

// Field readers: each fails naming the field.
Result<std::uint64_t> get_uint(const msgpack::object& o, const char* field) {
    if (o.type != msgpack::type::POSITIVE_INTEGER)
        return err(std::string("manifest: field '") + field + "' is not an unsigned integer");
    return o.via.u64;
}

Result<std::int64_t> get_time(const msgpack::object& o, const char* field) {
    // Times before 1970 are refused: a manifest cannot predate the project.
    if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > INT64_MAX)
        return err(std::string("manifest: field '") + field + "' is not a valid unix time");
    return static_cast<std::int64_t>(o.via.u64);
}

Result<std::string> get_str(const msgpack::object& o, const char* field) {
    if (o.type != msgpack::type::STR)
        return err(std::string("manifest: field '") + field + "' is not a string");
    return std::string(o.via.str.ptr, o.via.str.size);
}

Result<ByteView> get_bin(const msgpack::object& o, const char* field) {
    if (o.type != msgpack::type::BIN)
        return err(std::string("manifest: field '") + field + "' is not binary");
    return ByteView(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), o.via.bin.size);
}

template <size_t N>
Result<std::array<std::uint8_t, N>> get_fixed(const msgpack::object& o, const char* field) {
    auto b = get_bin(o, field);
    if (!b) return std::move(b).take_error();
    if (b->size() != N)
        return err(std::string("manifest: field '") + field + "' is " + std::to_string(b->size()) +
                   " bytes, expected " + std::to_string(N));
    std::array<std::uint8_t, N> out;
    std::memcpy(out.data(), b->data(), N);
    return out;
}

#define PS_TRY_ASSIGN(dst, expr)                          \
    do {                                                  \
        auto r_ = (expr);                                 \
        if (!r_) return std::move(r_).take_error();       \
        dst = static_cast<decltype(dst)>(std::move(*r_)); \
    } while (0)

// The two rollout fields: urgent (boolean), waves (a bin of 12-byte steps).
Status rollout_from(const msgpack::object* f, Manifest& m) {
    if (f[0].type != msgpack::type::BOOLEAN) return err("manifest: field 'urgent' is not a boolean");
    m.urgent = f[0].via.boolean;
    auto w = get_bin(f[1], "waves");
    if (!w) return std::move(w).take_error();
    if (w->size() % kWaveStepBytes != 0 || w->size() > core::kMaxWaveSteps * kWaveStepBytes)
        return err("manifest: field 'waves' is " + std::to_string(w->size()) + " bytes, not at most " +
                   std::to_string(core::kMaxWaveSteps) + " steps of " + std::to_string(kWaveStepBytes));
    for (std::size_t i = 0; i < w->size(); i += kWaveStepBytes) {
        std::uint64_t after = get_be(w->data() + i, 8);
        if (after > static_cast<std::uint64_t>(kMaxValiditySeconds))
            return err("manifest: wave step " + std::to_string(i / kWaveStepBytes + 1) + " is past any validity");
        m.waves.push_back({static_cast<std::int64_t>(after), static_cast<std::uint32_t>(get_be(w->data() + i + 8, 4))});
    }
    return {};
}

Result<Manifest> from_object(const msgpack::object& root) {
    if (root.type != msgpack::type::ARRAY) return err("manifest: not a msgpack array");
    if (root.via.array.size == 0) return err("manifest: empty array");
    const msgpack::object* f = root.via.array.ptr;
    Manifest m;
    std::uint64_t format = 0;
    // The format comes first so that a newer manifest is reported as such,
    // whatever its field count.
    PS_TRY_ASSIGN(format, get_uint(f[0], "format"));
    if (format != kManifestFormat && format != kManifestFormatWholeFile)
        return err("manifest: unknown format version " + std::to_string(format) + " (this build reads versions " +
                   std::to_string(kManifestFormatWholeFile) + " and " + std::to_string(kManifestFormat) + ")");
    const auto fields = root.via.array.size;
    if (fields != kSignedFields && fields != kSignedFields + kRolloutFields)
        return err("manifest: has " + std::to_string(fields) + " fields, expected " +
                   std::to_string(kSignedFields) + " or " + std::to_string(kSignedFields + kRolloutFields));
    m.format = static_cast<std::uint32_t>(format);
    PS_TRY_ASSIGN(m.name, get_str(f[1], "name"));
    PS_TRY_ASSIGN(m.version, get_uint(f[2], "version"));
    PS_TRY_ASSIGN(m.label, get_str(f[3], "label"));
    PS_TRY_ASSIGN(m.created, get_time(f[4], "created"));
    PS_TRY_ASSIGN(m.expires, get_time(f[5], "expires"));
    PS_TRY_ASSIGN(m.total_size, get_uint(f[6], "total_size"));
    std::uint64_t seg = 0;
    PS_TRY_ASSIGN(seg, get_uint(f[7], "segment_size"));
    if (seg > kMaxSegmentSize)
        return err("manifest: segment_size " + std::to_string(seg) + " is over " +
                   std::to_string(kMaxSegmentSize));
    m.segment_size = static_cast<std::uint32_t>(seg);
    ByteView hashes;
    PS_TRY_ASSIGN(hashes, get_bin(f[8], "segment_hashes"));
    if (hashes.size() % 32 != 0)
        return err("manifest: segment_hashes is " + std::to_string(hashes.size()) +
                   " bytes, not a multiple of 32");
    m.segment_hashes.resize(hashes.size() / 32);
    if (!hashes.empty()) std::memcpy(m.segment_hashes.data(), hashes.data(), hashes.size());
    PS_TRY_ASSIGN(m.file_hash, get_fixed<32>(f[9], "file_hash"));
    if (f[10].type != msgpack::type::BOOLEAN)
        return err("manifest: field 'mandatory' is not a boolean");
    m.mandatory = f[10].via.boolean;
    PS_TRY_ASSIGN(m.key_id, get_fixed<32>(f[11], "key_id"));
    std::uint32_t sig = kUnsignedFields;
    if (fields == kSignedFields + kRolloutFields) {
        if (auto st = rollout_from(f + kUnsignedFields, m); !st) return std::move(st).take_error();
        sig += kRolloutFields;
    }
    PS_TRY_ASSIGN(m.signature, get_fixed<crypto::kSignatureSize>(f[sig], "signature"));
    return m;
}

#undef PS_TRY_ASSIGN

}  // namespace

std::uint32_t Manifest::segment_count() const {
    if (segment_size == 0) return 0;
    std::uint64_t n = total_size / segment_size + (total_size % segment_size != 0);
    return n > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(n);
}

std::uint64_t Manifest::segment_offset(std::uint32_t i) const {
    return std::uint64_t{i} * segment_size;
}

std::uint32_t Manifest::segment_length(std::uint32_t i) const {
    std::uint64_t off = segment_offset(i);
    if (off >= total_size) return 0;
    std::uint64_t rest = total_size - off;
    return rest < segment_size ? static_cast<std::uint32_t>(rest) : segment_size;
}

bool Manifest::is_signed() const {
    for (auto b : signature)
        if (b) return true;
    return false;
}

bool valid_patch_name(std::string_view s) { return valid_name(s); }

Hash32 key_id_of(const crypto::PublicKey& pk) { return crypto::blake2b(ByteView(pk)); }

std::string short_hex(const Hash32& h) { return to_hex(ByteView(h).first(8)); }

Hash32 segment_root(std::uint64_t total_size, std::uint32_t segment_size, const std::vector<Hash32>& segment_hashes) {
    static const char kPiece[] = "patchswarm-piece-v2";  // with its NUL
    static const char kRoot[] = "patchswarm-root-v2";
    Bytes pieces;
    pieces.reserve((segment_hashes.size() / kHashesPerPiece + 1) * 32);
    for (std::size_t at = 0; at < segment_hashes.size(); at += kHashesPerPiece) {
        std::size_t n = std::min<std::size_t>(kHashesPerPiece, segment_hashes.size() - at);
        auto h = crypto::blake2b({ByteView(reinterpret_cast<const std::uint8_t*>(kPiece), sizeof kPiece),
                                  ByteView(segment_hashes[at].data(), n * 32)});
        pieces.insert(pieces.end(), h.begin(), h.end());
    }
    std::uint8_t sizes[12];
    for (int i = 0; i < 8; ++i) sizes[i] = static_cast<std::uint8_t>(total_size >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) sizes[8 + i] = static_cast<std::uint8_t>(segment_size >> (24 - 8 * i));
    return crypto::blake2b({ByteView(reinterpret_cast<const std::uint8_t*>(kRoot), sizeof kRoot),
                            ByteView(sizes, sizeof sizes), ByteView(pieces)});
}

Status validate_manifest(const Manifest& m) {
    if (m.format != kManifestFormat && m.format != kManifestFormatWholeFile)
        return err("manifest: unknown format version " + std::to_string(m.format));
    if (!valid_name(m.name))
        return err("manifest: name must be 1.." + std::to_string(kMaxNameLength) +
                   " characters of [a-z0-9._-] starting with a letter or digit");
    if (!valid_label(m.label))
        return err("manifest: label must be at most " + std::to_string(kMaxLabelLength) +
                   " printable ASCII characters");
    if (m.version == 0) return err("manifest: version must be at least 1");
    if (m.created < 0) return err("manifest: created is before 1970");
    if (m.expires <= m.created) return err("manifest: expires is not after created");
    if (m.expires - m.created > kMaxValiditySeconds)
        return err("manifest: validity of " + std::to_string((m.expires - m.created) / 86400) +
                   " days is over the 10-year limit");
    if (m.segment_size < kMinSegmentSize || m.segment_size > kMaxSegmentSize)
        return err("manifest: segment_size " + std::to_string(m.segment_size) + " is outside " +
                   std::to_string(kMinSegmentSize) + ".." + std::to_string(kMaxSegmentSize));
    if (m.total_size == 0) return err("manifest: total_size is 0");
    if (m.total_size > kMaxTotalSize)
        return err("manifest: total_size " + std::to_string(m.total_size) + " is over the " +
                   std::to_string(kMaxTotalSize) + "-byte limit");
    std::uint64_t want = m.total_size / m.segment_size + (m.total_size % m.segment_size != 0);
    if (want > kMaxSegments)
        return err("manifest: " + std::to_string(want) + " segments is over the limit of " +
                   std::to_string(kMaxSegments));
    if (m.segment_hashes.size() != want)
        return err("manifest: sizes do not add up: total_size " + std::to_string(m.total_size) +
                   " in segments of " + std::to_string(m.segment_size) + " needs " +
                   std::to_string(want) + " segment hashes, found " +
                   std::to_string(m.segment_hashes.size()));
    if (m.format == kManifestFormat && !crypto::equal(m.file_hash, segment_root(m.total_size, m.segment_size, m.segment_hashes)))
        return err("manifest: file_hash is not the root of its segment hashes");
    if (auto st = core::validate_waves(m.waves); !st) return err("manifest: " + st.error());
    if (!m.waves.empty() && m.waves.back().after_s >= m.expires - m.created)
        return err("manifest: waves: the last step (+" + std::to_string(m.waves.back().after_s) +
                   "s) is not before the manifest expires");
    if ((m.urgent || !m.waves.empty()) && !m.mandatory)
        return err(std::string("manifest: ") + (m.urgent ? "urgent" : "waves") +
                   " applies to mandatory patches only");
    if (m.urgent && !m.waves.empty()) return err("manifest: an urgent patch skips waves; it cannot have them");
    return {};
}

Bytes signing_bytes(const Manifest& m) {
    msgpack::sbuffer buf;
    buf.write(kSigningContext.data(), kSigningContext.size());
    Packer pk(buf);
    pack_fields(pk, m, false);
    return to_bytes(buf);
}

Bytes encode_manifest(const Manifest& m) {
    msgpack::sbuffer buf(m.segment_hashes.size() * 32 + 512);
    Packer pk(buf);
    pack_fields(pk, m, true);
    return to_bytes(buf);
}

Result<Manifest> decode_manifest(ByteView data) {
    return catch_as_error("manifest", [&]() -> Result<Manifest> {
        if (data.size() > kMaxManifestBytes)
            return err("manifest: " + std::to_string(data.size()) + " bytes is over the " +
                       std::to_string(kMaxManifestBytes) + "-byte limit");
        detail::UnpackLimits lim;
        lim.array = 32;  // 13 or 15 fields today; room to report a newer format as such
        lim.map = 0;
        lim.str = kMaxLabelLength > kMaxNameLength ? kMaxLabelLength : kMaxNameLength;
        lim.bin = std::size_t{kMaxSegments} * 32;
        lim.ext = 0;
        lim.depth = 1;  // one flat array, nothing nested inside it
        auto oh = detail::unpack_bounded(data, lim, "manifest");
        if (!oh) return std::move(oh).take_error();
        auto m = from_object(oh->get());
        if (!m) return m;
        if (auto s = validate_manifest(*m); !s) return std::move(s).take_error();
        // Canonical form: exactly one byte string per manifest, so the id and the
        // signed bytes cannot be varied (e.g. by a wider integer encoding).
        Bytes again = encode_manifest(*m);
        if (again.size() != data.size() || std::memcmp(again.data(), data.data(), data.size()) != 0)
            return err("manifest: not in canonical encoding");
        return m;
    });
}

Hash32 manifest_id(ByteView signed_encoding) { return crypto::blake2b(signed_encoding); }

void sign_manifest(Manifest& m, const crypto::SecretKey& sk) {
    m.key_id = key_id_of(sk.public_key());
    m.signature = crypto::sign(sk, signing_bytes(m));
}

Status check_signature(const Manifest& m, const crypto::PublicKey& pk) {
    Hash32 id = key_id_of(pk);
    if (!crypto::equal(id, m.key_id))
        return err("manifest is signed by key " + short_hex(m.key_id) + ", not by key " +
                   short_hex(id));
    if (!m.is_signed()) return err("manifest is unsigned");
    if (!crypto::verify(pk, signing_bytes(m), m.signature)) return err("bad signature");
    return {};
}

Status check_segment(const Manifest& m, std::uint32_t index, ByteView data) {
    if (index >= m.segment_hashes.size())
        return err("segment " + std::to_string(index) + " is past the last segment (" +
                   std::to_string(m.segment_hashes.size()) + " segments)");
    if (data.size() != m.segment_length(index))
        return err("segment " + std::to_string(index) + " is " + std::to_string(data.size()) +
                   " bytes, expected " + std::to_string(m.segment_length(index)));
    if (!crypto::equal(crypto::blake2b(data), m.segment_hashes[index]))
        return err("segment " + std::to_string(index) + " does not match its hash");
    return {};
}

}  // namespace ps::wire
