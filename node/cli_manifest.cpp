// Operator commands: keygen, publish, verify, sign, inspect, rotate-key.
// Each runner returns the exit code; failures print one line on stderr via fail().
#include <cstdio>
#include <ctime>
#include <memory>

#include "node/cli.hpp"
#include "node/keys.hpp"
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
    std::string key_path, file_path, name, out_path, label;
    std::uint64_t version = 0;
    unsigned expires_days = 30;
    std::uint32_t segment_size = wire::kDefaultSegmentSize;
    bool mandatory = false;
};

int run_publish(const PublishOpts& o) {
    // Load the key first: a bad key should fail before minutes of hashing.
    auto sk = node::load_secret_key(o.key_path);
    if (!sk) return fail("publish", sk.error());
    wire::Manifest m;
    m.name = o.name;
    m.version = o.version;
    m.label = o.label;
    m.created = now_unix();
    m.expires = m.created + std::int64_t{o.expires_days} * 86400;
    m.segment_size = o.segment_size;
    m.mandatory = o.mandatory;
    m.key_id = wire::key_id_of(sk->public_key());
    // Check the fields that do not depend on the file before reading it.
    {
        wire::Manifest probe = m;
        probe.total_size = 1;
        probe.segment_hashes.resize(1);
        if (auto s = wire::validate_manifest(probe); !s) return fail("publish", s.error());
    }
    auto d = node::digest_file(o.file_path, o.segment_size);
    if (!d) return fail("publish", d.error());
    m.total_size = d->total_size;
    m.segment_hashes = std::move(d->segment_hashes);
    m.file_hash = d->file_hash;
    if (auto s = wire::validate_manifest(m); !s) return fail("publish", s.error());
    wire::sign_manifest(m, *sk);
    Bytes bytes = wire::encode_manifest(m);
    // Never write a manifest a node would refuse.
    if (auto back = wire::decode_manifest(bytes); !back)
        return fail("publish", "internal error, the encoded manifest does not decode: " + back.error());
    if (auto s = node::write_file_atomic(o.out_path, bytes); !s) return fail("publish", s.error());
    std::printf("published %s version %llu: manifest id %s, %u segments of %u bytes, %llu bytes "
                "total, expires %s -> %s\n",
                m.name.c_str(), static_cast<unsigned long long>(m.version),
                to_hex(wire::manifest_id(bytes)).c_str(), m.segment_count(), m.segment_size,
                static_cast<unsigned long long>(m.total_size), node::format_utc(m.expires).c_str(),
                o.out_path.c_str());
    return 0;
}

// ---- verify ----
struct VerifyOpts {
    std::string manifest_path, trust_path, file_path;
};

int run_verify(const VerifyOpts& o) {
    auto trust = node::TrustStore::load(o.trust_path);
    if (!trust) return fail("verify", trust.error());
    auto v = node::load_verified_manifest(o.manifest_path, *trust, now_unix());
    if (!v) return fail("verify", v.error());
    const auto& m = v->manifest;
    if (!o.file_path.empty())
        if (auto s = node::check_patch_file(m, o.file_path); !s) return fail("verify", s.error());
    std::printf("OK %s version %llu%s%s: manifest id %s, %u segments, %llu bytes, signed by key %s, "
                "expires %s%s\n",
                m.name.c_str(), static_cast<unsigned long long>(m.version),
                m.label.empty() ? "" : " ", m.label.c_str(), to_hex(v->id).c_str(),
                m.segment_count(), static_cast<unsigned long long>(m.total_size),
                wire::short_hex(m.key_id).c_str(), node::format_utc(m.expires).c_str(),
                o.file_path.empty() ? "" : "; file matches every segment");
    return 0;
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
    {
        auto o = std::make_shared<PublishOpts>();
        auto* sub = app.add_subcommand("publish", "Hash a patch file and write its signed manifest");
        sub->add_option("--key", o->key_path, "Operator secret key file")->required();
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
        sub->add_flag("--mandatory", o->mandatory, "Devices must install this patch");
        out.emplace_back(sub, [o] { return run_publish(*o); });
    }
    {
        auto o = std::make_shared<VerifyOpts>();
        auto* sub = app.add_subcommand("verify", "Check a manifest (and optionally a patch file)");
        sub->add_option("--manifest", o->manifest_path, "Manifest file")->required();
        sub->add_option("--trust", o->trust_path, "Public key file or trust file")->required();
        sub->add_option("--file", o->file_path, "Patch file to check against the manifest");
        out.emplace_back(sub, [o] { return run_verify(*o); });
    }
}

}  // namespace ps::cli
