// Operator commands: keygen, publish, verify, sign, inspect, rotate-key, trust-apply.
// Each runner returns the exit code; failures print one line on stderr via fail().
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "node/cli.hpp"
#include "node/keys.hpp"
#include "wire/statement.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"

namespace ps::cli {

namespace {

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

// ---- keygen ----
struct KeygenOpts {
    std::string secret_path, public_path;
};

int run_keygen(const KeygenOpts& o) {
    auto kp = crypto::generate_keypair();
    if (auto s = node::write_keypair(o.secret_path, o.public_path, kp); !s)
        return fail("keygen", s.error());
    std::printf("wrote secret key %s (mode 0600) and public key %s; key id %s\n",
                o.secret_path.c_str(), o.public_path.c_str(),
                to_hex(wire::key_id_of(kp.pk)).c_str());
    return 0;
}

// ---- publish ----
struct PublishOpts {
    std::string key_path, file_path, name, out_path, label, signer_public_path;
    bool unsigned_ = false;
    std::uint64_t version = 0;
    unsigned expires_days = 30;
    std::uint32_t segment_size = wire::kDefaultSegmentSize;
    std::uint32_t format = wire::kManifestFormat;
    bool mandatory = false;
    bool urgent = false;
    std::string waves;  // "10%,50%@1h,100%@1d"
    bool announce = false;
    SocketArgs origin;  // with --announce: the origin's control socket
};

int run_publish(const PublishOpts& o) {
    // Load the key first: a bad key should fail before minutes of hashing.
    std::optional<crypto::SecretKey> sk;
    crypto::PublicKey signer_pk{};
    if (o.unsigned_) {
        if (o.signer_public_path.empty() || !o.key_path.empty())
            return fail("publish", "--unsigned needs --signer-public and no --key", kExitUsage);
        auto pk = node::load_public_key(o.signer_public_path);
        if (!pk) return fail("publish", pk.error());
        signer_pk = *pk;
    } else {
        if (o.key_path.empty() || !o.signer_public_path.empty())
            return fail("publish", "give --key, or --unsigned with --signer-public", kExitUsage);
        auto loaded = node::load_secret_key(o.key_path);
        if (!loaded) return fail("publish", loaded.error());
        sk = std::move(*loaded);
        signer_pk = sk->public_key();
    }
    wire::Manifest m;
    m.name = o.name;
    m.version = o.version;
    m.label = o.label;
    m.created = now_unix();
    m.expires = m.created + std::int64_t{o.expires_days} * 86400;
    m.segment_size = o.segment_size;
    m.format = o.format;
    // Urgent and staged patches are ones devices must install.
    m.mandatory = o.mandatory || o.urgent || !o.waves.empty();
    m.urgent = o.urgent;
    if (!o.waves.empty()) {
        auto w = core::parse_waves(o.waves);
        if (!w) return fail("publish", "--waves: " + w.error(), kExitUsage);
        m.waves = std::move(*w);
    }
    m.key_id = wire::key_id_of(signer_pk);
    // Check the fields that do not depend on the file before reading it.
    {
        wire::Manifest probe = m;
        probe.total_size = 1;
        probe.segment_hashes.resize(1);
        probe.file_hash = wire::segment_root(probe.total_size, probe.segment_size, probe.segment_hashes);
        if (auto s = wire::validate_manifest(probe); !s) return fail("publish", s.error());
    }
    auto filled = node::manifest_for_file(o.file_path, std::move(m));
    if (!filled) return fail("publish", filled.error());
    m = std::move(*filled);
    if (sk) wire::sign_manifest(m, *sk);
    Bytes bytes = wire::encode_manifest(m);
    // Never write a manifest a node would refuse.
    if (auto back = wire::decode_manifest(bytes); !back)
        return fail("publish",
                    "internal error, the encoded manifest does not decode: " + back.error());
    if (auto s = node::write_file_atomic(o.out_path, bytes); !s) return fail("publish", s.error());
    std::printf(
        "%s %s version %llu: manifest id %s, %u segments of %u bytes, %llu bytes "
        "total, expires %s -> %s\n",
        sk ? "published" : "wrote UNSIGNED manifest for", m.name.c_str(),
        static_cast<unsigned long long>(m.version), to_hex(wire::manifest_id(bytes)).c_str(),
        m.segment_count(), m.segment_size, static_cast<unsigned long long>(m.total_size),
        node::format_utc(m.expires).c_str(), o.out_path.c_str());
    std::fflush(stdout);
    if (o.announce) return announce_via_daemon(o.origin, o.out_path, o.file_path);
    return 0;
}

// ---- verify ----
struct VerifyOpts {
    std::string manifest_path, trust_path, file_path, state_path;
};

int run_verify(const VerifyOpts& o) {
    auto trust = node::TrustStore::load(o.trust_path);
    if (!trust) return fail("verify", trust.error());
    auto v = node::load_verified_manifest(o.manifest_path, *trust, now_unix());
    if (!v) return fail("verify", v.error());
    const auto& m = v->manifest;
    std::optional<node::RollbackGuard> guard;
    if (!o.state_path.empty()) {
        auto g = node::RollbackGuard::load(o.state_path);
        if (!g) return fail("verify", g.error());
        if (auto s = g->check(*v); !s) return fail("verify", s.error());
        guard = std::move(*g);
    }
    if (!o.file_path.empty())
        if (auto s = node::check_patch_file(m, o.file_path); !s) return fail("verify", s.error());
    // Recorded only once everything passed: a rejected manifest never replaces an accepted one.
    if (guard)
        if (auto s = guard->accept(*v); !s) return fail("verify", s.error());
    std::printf(
        "OK %s version %llu%s%s: manifest id %s, %u segments, %llu bytes, signed by key %s, "
        "expires %s%s\n",
        m.name.c_str(), static_cast<unsigned long long>(m.version), m.label.empty() ? "" : " ",
        m.label.c_str(), to_hex(v->id).c_str(), m.segment_count(),
        static_cast<unsigned long long>(m.total_size), wire::short_hex(m.key_id).c_str(),
        node::format_utc(m.expires).c_str(),
        o.file_path.empty() ? "" : "; file matches every segment");
    return 0;
}

// ---- sign (offline signing of an unsigned manifest) ----
struct SignOpts {
    std::string key_path, in_path, out_path;
};

int run_sign(const SignOpts& o) {
    auto sk = node::load_secret_key(o.key_path);
    if (!sk) return fail("sign", sk.error());
    auto data = node::read_file_limited(o.in_path, wire::kMaxManifestBytes);
    if (!data) return fail("sign", data.error());
    auto m = wire::decode_manifest(*data);
    if (!m) return fail("sign", m.error());
    auto pk = sk->public_key();
    if (m->key_id != wire::key_id_of(pk))
        return fail("sign", "the manifest names signer key " + wire::short_hex(m->key_id) +
                                ", but this secret key is " + wire::short_hex(wire::key_id_of(pk)));
    if (m->expires <= now_unix())
        return fail("sign", "the manifest expired at " + node::format_utc(m->expires));
    wire::sign_manifest(*m, *sk);
    Bytes bytes = wire::encode_manifest(*m);
    if (auto s = wire::check_signature(*m, pk); !s)
        return fail("sign", "internal error: " + s.error());
    if (auto s = node::write_file_atomic(o.out_path, bytes); !s) return fail("sign", s.error());
    std::printf("signed %s version %llu (%llu bytes, %u segments): manifest id %s -> %s\n",
                m->name.c_str(), static_cast<unsigned long long>(m->version),
                static_cast<unsigned long long>(m->total_size), m->segment_count(),
                to_hex(wire::manifest_id(bytes)).c_str(), o.out_path.c_str());
    return 0;
}

// ---- inspect ----
struct InspectOpts {
    std::string manifest_path;
    bool json = false, segments = false;
};

int run_inspect(const InspectOpts& o) {
    auto data = node::read_file_limited(o.manifest_path, wire::kMaxManifestBytes);
    if (!data) return fail("inspect", data.error());
    auto m = wire::decode_manifest(*data);
    if (!m) return fail("inspect", m.error());
    auto id = wire::manifest_id(*data);
    if (o.json) {
        nlohmann::json j;
        j["format"] = m->format;
        j["id"] = to_hex(id);
        j["name"] = m->name;
        j["version"] = m->version;
        j["label"] = m->label;
        j["created"] = m->created;
        j["created_utc"] = node::format_utc(m->created);
        j["expires"] = m->expires;
        j["expires_utc"] = node::format_utc(m->expires);
        j["total_size"] = m->total_size;
        j["segment_size"] = m->segment_size;
        j["segment_count"] = m->segment_count();
        auto& hashes = j["segment_hashes"] = nlohmann::json::array();
        for (const auto& h : m->segment_hashes) hashes.push_back(to_hex(h));
        j["format"] = m->format;  // 2: file_hash is the root of the segment hashes; 1: of the whole file
        j["file_hash"] = to_hex(m->file_hash);
        j["mandatory"] = m->mandatory;
        j["urgent"] = m->urgent;
        auto& waves = j["waves"] = nlohmann::json::array();
        for (const auto& w : m->waves) waves.push_back({{"after_s", w.after_s}, {"fraction", w.fraction / 1e6}});
        j["key_id"] = to_hex(m->key_id);
        j["signed"] = m->is_signed();
        j["signature"] = to_hex(m->signature);
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf(
        "manifest %s (not verified: use 'patchswarm verify' for that)\n"
        "  name          %s\n  version       %llu\n  label         %s\n"
        "  created       %s\n  expires       %s\n  total size    %llu bytes\n"
        "  segments      %u of %u bytes\n  file hash     %s\n  mandatory     %s\n"
        "  urgent        %s\n  waves         %s\n"
        "  signer key id %s\n  signature     %s\n",
        to_hex(id).c_str(), m->name.c_str(), static_cast<unsigned long long>(m->version),
        m->label.c_str(), node::format_utc(m->created).c_str(),
        node::format_utc(m->expires).c_str(), static_cast<unsigned long long>(m->total_size),
        m->segment_count(), m->segment_size, to_hex(m->file_hash).c_str(),
        m->mandatory ? "yes" : "no", m->urgent ? "yes" : "no", core::describe_waves(m->waves).c_str(),
        to_hex(m->key_id).c_str(),
        m->is_signed() ? "present" : "NONE (unsigned)");
    if (o.segments)
        for (std::uint32_t i = 0; i < m->segment_count(); ++i)
            std::printf("  segment %u  offset %llu  length %u  %s\n", i,
                        static_cast<unsigned long long>(m->segment_offset(i)), m->segment_length(i),
                        to_hex(m->segment_hashes[i]).c_str());
    return 0;
}

// ---- rotate-key (operator side) ----
struct RotateOpts {
    std::string key_path, new_public_path, trust_path, out_path, statement_out;
    bool revoke_old = false;
};

int run_rotate(const RotateOpts& o) {
    auto sk = node::load_secret_key(o.key_path);
    if (!sk) return fail("rotate-key", sk.error());
    auto new_pk = node::load_public_key(o.new_public_path);
    if (!new_pk) return fail("rotate-key", new_pk.error());
    auto current = sk->public_key();
    node::TrustStore trust = node::TrustStore::from_key(current);
    bool created = false;
    if (std::filesystem::exists(o.trust_path)) {
        auto data = node::read_file_limited(o.trust_path, node::kMaxTrustFileBytes);
        if (!data) return fail("rotate-key", data.error());
        auto t = node::TrustStore::parse_trust_file(
            std::string_view(reinterpret_cast<const char*>(data->data()), data->size()),
            "trust file " + o.trust_path);
        if (!t) return fail("rotate-key", t.error());
        trust = std::move(*t);
    } else {
        created = true;  // a new trust file anchored on the current key
    }
    if (!trust.trusts(current))
        return fail("rotate-key", "the current key " + wire::short_hex(wire::key_id_of(current)) +
                                      " is not trusted (unknown or revoked) in " + o.trust_path);
    auto r = node::make_rotation(*sk, *new_pk, o.revoke_old, now_unix());
    if (auto s = trust.apply_rotation(r); !s) return fail("rotate-key", s.error());
    if (auto s = node::write_file_atomic(o.trust_path, as_bytes(trust.to_text())); !s)
        return fail("rotate-key", s.error());
    if (!o.out_path.empty()) {
        auto line = node::format_rotation(r) + "\n";
        if (auto s = node::write_file_atomic(o.out_path, as_bytes(line)); !s)
            return fail("rotate-key", s.error());
    }
    if (!o.statement_out.empty()) {
        wire::Statement st;
        st.kind = wire::StatementKind::KeyRotation;
        st.seq = static_cast<std::uint64_t>(r.created);
        st.issued = r.created;
        st.payload = node::rotation_payload(r);
        auto text = node::format_statement_file(wire::encode_statement(st, *sk));
        if (auto s = node::write_file_atomic(o.statement_out, as_bytes(text)); !s) return fail("rotate-key", s.error());
    }
    std::printf("%s trust file %s: key %s introduced by key %s%s\n",
                created ? "created" : "updated", o.trust_path.c_str(),
                wire::short_hex(wire::key_id_of(*new_pk)).c_str(),
                wire::short_hex(wire::key_id_of(current)).c_str(),
                o.revoke_old ? ", which is now revoked" : "");
    return 0;
}

// ---- trust-apply (node side: take in a rotation statement) ----
struct TrustApplyOpts {
    std::string trust_path, statement_path;
};

int run_trust_apply(const TrustApplyOpts& o) {
    auto data = node::read_file_limited(o.trust_path, node::kMaxTrustFileBytes);
    if (!data) return fail("trust-apply", data.error());
    auto trust = node::TrustStore::parse_trust_file(
        std::string_view(reinterpret_cast<const char*>(data->data()), data->size()),
        "trust file " + o.trust_path);
    if (!trust) return fail("trust-apply", trust.error());
    auto st = node::read_file_limited(o.statement_path, 1024);
    if (!st) return fail("trust-apply", st.error());
    std::string_view line(reinterpret_cast<const char*>(st->data()), st->size());
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    auto r = node::parse_rotation(line);
    if (!r) return fail("trust-apply", r.error());
    if (auto s = trust->apply_rotation(*r); !s) return fail("trust-apply", s.error());
    if (auto s = node::write_file_atomic(o.trust_path, as_bytes(trust->to_text())); !s)
        return fail("trust-apply", s.error());
    std::printf("trust file %s: key %s trusted%s\n", o.trust_path.c_str(),
                wire::short_hex(wire::key_id_of(r->new_key)).c_str(),
                r->revoke_signer
                    ? (", key " + wire::short_hex(wire::key_id_of(r->signer)) + " revoked").c_str()
                    : "");
    return 0;
}

// `publish`, the command with the most options.
void add_publish_command(CLI::App& app, Commands& out) {
    auto o = std::make_shared<PublishOpts>();
    auto* sub =
        app.add_subcommand("publish", "Hash a patch file and write its signed manifest");
    sub->add_option("--key", o->key_path, "Operator secret key file (or use --unsigned)");
    sub->add_option("--file", o->file_path, "Patch file")->required();
    sub->add_option("--name", o->name, "Patch name, [a-z0-9._-]")->required();
    sub->add_option("--version", o->version, "Patch version (>= 1, increases per release)")
        ->required();
    sub->add_option("--out", o->out_path, "Manifest file to write")->required();
    sub->add_option("--label", o->label, "Human label, e.g. 4.2.1-hotfix");
    sub->add_option("--expires-days", o->expires_days, "Days until the manifest expires")
        ->check(CLI::Range(1, 3650))
        ->capture_default_str();
    sub->add_option("--segment-size", o->segment_size, "Segment size in bytes")
        ->check(CLI::Range(wire::kMinSegmentSize, wire::kMaxSegmentSize))
        ->capture_default_str();
    sub->add_option("--manifest-format", o->format,
                    "2: the file hash is the root of the segment hashes (hashed on every core); "
                    "1: BLAKE2b of the whole file, for nodes built before format 2")
        ->check(CLI::Range(wire::kManifestFormatWholeFile, wire::kManifestFormat))
        ->capture_default_str();
    sub->add_flag("--mandatory", o->mandatory, "Devices must install this patch (they fetch it when announced)");
    sub->add_flag("--urgent", o->urgent,
                  "Devices fetch it at once when announced: no waves, no start delay (implies --mandatory)");
    sub->add_option("--waves", o->waves,
                    "Staged rollout of a mandatory patch: PERCENT[@DELAY],... e.g. 10%,50%@6h,100%@1d "
                    "(DELAY after publishing, in s/m/h/d)");
    sub->add_flag("--announce", o->announce,
                  "Then have the running origin serve the file and push the manifest into the network "
                  "(gossip to its peers, DHT under the patch name)");
    o->origin.add_to(sub);
    sub->add_flag("--unsigned", o->unsigned_,
                  "Write an unsigned manifest, to be signed offline with 'patchswarm sign'");
    sub->add_option("--signer-public", o->signer_public_path,
                    "With --unsigned: public key file of the key that will sign it");
    out.emplace_back(sub, [o] { return run_publish(*o); });
}

}  // namespace

void add_manifest_commands(CLI::App& app, Commands& out) {
    {
        auto o = std::make_shared<KeygenOpts>();
        auto* sub = app.add_subcommand("keygen", "Create an operator Ed25519 key pair");
        sub->add_option("--secret", o->secret_path, "Secret key file to create (mode 0600)")
            ->required();
        sub->add_option("--public", o->public_path, "Public key file to create")->required();
        out.emplace_back(sub, [o] { return run_keygen(*o); });
    }
    add_publish_command(app, out);
    {
        auto o = std::make_shared<VerifyOpts>();
        auto* sub = app.add_subcommand("verify", "Check a manifest (and optionally a patch file)");
        sub->add_option("--manifest", o->manifest_path, "Manifest file")->required();
        sub->add_option("--trust", o->trust_path, "Public key file or trust file")->required();
        sub->add_option("--file", o->file_path, "Patch file to check against the manifest");
        sub->add_option("--state", o->state_path,
                        "Rollback state file: refuse versions older than the accepted one, "
                        "and record this one when it passes");
        out.emplace_back(sub, [o] { return run_verify(*o); });
    }
    {
        auto o = std::make_shared<SignOpts>();
        auto* sub = app.add_subcommand("sign", "Sign an unsigned manifest (offline signing)");
        sub->add_option("--key", o->key_path, "Operator secret key file")->required();
        sub->add_option("--manifest", o->in_path, "Unsigned manifest")->required();
        sub->add_option("--out", o->out_path, "Signed manifest to write")->required();
        out.emplace_back(sub, [o] { return run_sign(*o); });
    }
    {
        auto o = std::make_shared<InspectOpts>();
        auto* sub = app.add_subcommand("inspect", "Show a manifest's fields (no trust check)");
        sub->add_option("--manifest", o->manifest_path, "Manifest file")->required();
        sub->add_flag("--json", o->json, "Print JSON");
        sub->add_flag("--segments", o->segments, "List every segment (human output)");
        out.emplace_back(sub, [o] { return run_inspect(*o); });
    }
    {
        auto o = std::make_shared<RotateOpts>();
        auto* sub = app.add_subcommand(
            "rotate-key",
            "Introduce a new operator key, signed by the current one, in a trust file");
        sub->add_option("--key", o->key_path, "Current operator secret key file")->required();
        sub->add_option("--new-public", o->new_public_path, "Public key file of the new key")
            ->required();
        sub->add_option("--trust", o->trust_path,
                        "Trust file to update (created, anchored on the current key, if missing)")
            ->required();
        sub->add_flag("--revoke-old", o->revoke_old, "Also revoke the current key");
        sub->add_option("--out", o->out_path,
                        "Also write the rotation statement alone, for 'trust-apply' on nodes");
        sub->add_option("--statement-out", o->statement_out,
                        "Also write it as a signed operator statement, for 'patchswarm statement' "
                        "(spreads to every node by gossip and the DHT)");
        out.emplace_back(sub, [o] { return run_rotate(*o); });
    }
    {
        auto o = std::make_shared<TrustApplyOpts>();
        auto* sub = app.add_subcommand("trust-apply",
                                       "Apply a signed key-rotation statement to a trust file");
        sub->add_option("--trust", o->trust_path, "Trust file to update")->required();
        sub->add_option("--statement", o->statement_path, "Rotation statement file")->required();
        out.emplace_back(sub, [o] { return run_trust_apply(*o); });
    }
}

}  // namespace ps::cli
