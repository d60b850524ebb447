// `patchswarm enroll`: the operator signs a node certificate (node/enroll.hpp);
// `halt`, `revoke-cert` and `widen`: the operator signs a statement (wire/statement.hpp).
#include <cstdio>
#include <ctime>
#include <memory>

#include "core/rollout.hpp"
#include "core/types.hpp"
#include "node/cli.hpp"
#include "node/daemon.hpp"
#include "node/enroll.hpp"
#include "node/keys.hpp"
#include "wire/manifest.hpp"
#include "wire/statement.hpp"

namespace ps::cli {
namespace {

struct EnrollOpts {
    std::string key_path, node_public, data_dir, role = "peer", domain, out_path;
    int days = 365;
};

int run_enroll(const EnrollOpts& o) {
    auto role = role_from_string(o.role);
    if (!role) return fail("enroll", "--role must be origin, super or peer, not '" + o.role + "'", kExitUsage);
    if (!valid_domain(o.domain))
        return fail("enroll", "--domain '" + o.domain + "' is not 1-63 characters of a-z, 0-9, -", kExitUsage);
    if (o.node_public.empty() == o.data_dir.empty())
        return fail("enroll", "give the node's key as exactly one of --node-public or --data", kExitUsage);
    auto sk = node::load_secret_key(o.key_path);
    if (!sk) return fail("enroll", sk.error());
    crypto::PublicKey node_key{};
    if (!o.data_dir.empty()) {
        auto k = node::node_key(o.data_dir);  // created when the node has none yet
        if (!k) return fail("enroll", o.data_dir + ": node key: " + k.error());
        node_key = k->public_key();
    } else {
        auto k = node::load_public_key(o.node_public);
        if (!k) return fail("enroll", k.error());
        node_key = *k;
    }
    wire::NodeCert c;
    c.node_key = node_key;
    c.role = *role;
    c.domain = o.domain;
    c.issued = static_cast<std::int64_t>(std::time(nullptr));
    c.expires = c.issued + std::int64_t{o.days} * 86400;
    const Bytes cert = wire::encode_cert(c, *sk);
    if (auto s = node::write_file_atomic(o.out_path, as_bytes(node::format_cert_file(cert))); !s)
        return fail("enroll", s.error());
    std::printf("certificate %s: node %s enrolled as %s in %s until %s\n", o.out_path.c_str(),
                to_hex(ByteView(node_key).first(4)).c_str(), o.role.c_str(), o.domain.c_str(),
                node::format_utc(c.expires).c_str());
    return kExitOk;
}

// Signs a statement of `kind` with the key in key_path (now as its issue time
// and sequence number) and writes it as a statement file; an error names the problem.
Status write_statement(wire::StatementKind kind, Bytes payload, const std::string& key_path, const std::string& out) {
    auto sk = node::load_secret_key(key_path);
    if (!sk) return std::move(sk).take_error();
    wire::Statement st;
    st.kind = kind;
    st.issued = static_cast<std::int64_t>(std::time(nullptr));
    st.seq = static_cast<std::uint64_t>(st.issued);
    st.payload = std::move(payload);
    return node::write_file_atomic(out, as_bytes(node::format_statement_file(wire::encode_statement(st, *sk))));
}

struct RevokeOpts {
    std::string key_path, node_public, out_path;
};

int run_revoke(const RevokeOpts& o) {
    auto node_key = node::load_public_key(o.node_public);
    if (!node_key) return fail("revoke-cert", node_key.error());
    if (auto s = write_statement(wire::StatementKind::RevokeCert, Bytes(node_key->begin(), node_key->end()), o.key_path,
                                 o.out_path);
        !s)
        return fail("revoke-cert", s.error());
    std::printf("statement %s: certificates of node %s revoked; spread it with 'patchswarm statement --file %s'\n",
                o.out_path.c_str(), to_hex(ByteView(*node_key).first(4)).c_str(), o.out_path.c_str());
    return kExitOk;
}

struct HaltOpts {
    std::string key_path, name, out_path;
    std::uint64_t version = 0;
};

int run_halt(const HaltOpts& o) {
    if (!wire::valid_patch_name(o.name)) return fail("halt", "--name '" + o.name + "' is not a valid patch name", kExitUsage);
    if (auto s = write_statement(wire::StatementKind::Halt, wire::halt_payload(o.name, o.version), o.key_path, o.out_path);
        !s)
        return fail("halt", s.error());
    std::printf("statement %s: %s v%llu halted; spread it with 'patchswarm statement --file %s'\n", o.out_path.c_str(),
                o.name.c_str(), static_cast<unsigned long long>(o.version), o.out_path.c_str());
    return kExitOk;
}

struct WidenOpts {
    std::string key_path, manifest_path, name, to, out_path;
    std::uint64_t version = 0;
    SocketArgs node;  // with --name: a running node that lists the release
};

// The manifest id to widen: the manifest file's, or that of the release a
// running node lists under this name and version.
Result<Hash32> widen_target(const WidenOpts& o) {
    if (!o.manifest_path.empty()) {
        auto bytes = node::read_file_limited(o.manifest_path, wire::kMaxManifestBytes);
        if (!bytes) return err(o.manifest_path + ": " + bytes.error());
        if (auto m = wire::decode_manifest(*bytes); !m) return err(o.manifest_path + ": " + m.error());
        return wire::manifest_id(*bytes);
    }
    auto hex = listed_manifest_id(o.node, o.name, o.version);
    if (!hex) return std::move(hex).take_error();
    auto b = from_hex(*hex);
    Hash32 id{};
    if (!b || b->size() != id.size()) return err("the node listed '" + hex->substr(0, 80) + "' as the manifest id");
    std::copy(b->begin(), b->end(), id.begin());
    return id;
}

int run_widen(const WidenOpts& o) {
    if (o.manifest_path.empty() == o.name.empty())
        return fail("widen", "give the release as exactly one of --manifest or --name (with --version)", kExitUsage);
    if (!o.name.empty() && o.version == 0) return fail("widen", "--name needs --version", kExitUsage);
    auto fraction = core::parse_percent(o.to);
    if (!fraction || *fraction == 0)
        return fail("widen", "--to '" + o.to + "' is not a percentage above 0 and at most 100, e.g. 50%", kExitUsage);
    auto id = widen_target(o);
    if (!id) return fail("widen", id.error());
    auto payload = wire::widen_payload(*id, *fraction);
    if (auto s = write_statement(wire::StatementKind::Widen, std::move(payload), o.key_path, o.out_path); !s)
        return fail("widen", s.error());
    std::printf("statement %s: the wave of manifest %s widened to %s; spread it with 'patchswarm statement --file %s'\n",
                o.out_path.c_str(), to_hex(ByteView(*id).first(8)).c_str(), core::format_percent(*fraction).c_str(),
                o.out_path.c_str());
    return kExitOk;
}

}  // namespace

void add_enroll_command(CLI::App& app, Commands& out) {
    {
        auto o = std::make_shared<WidenOpts>();
        auto* sub = app.add_subcommand("widen", "Sign a statement widening a staged release's wave: devices up to this "
                                                "fraction take it now");
        sub->add_option("--key", o->key_path, "Operator secret key file")->required();
        sub->add_option("--manifest", o->manifest_path, "The release's manifest file");
        sub->add_option("--name", o->name, "Or: the patch name, whose manifest id a running node's list gives");
        sub->add_option("--version", o->version, "With --name: the patch version")
            ->check(CLI::Range(std::uint64_t{1}, UINT64_MAX));
        sub->add_option("--to", o->to, "Fraction of devices, e.g. 50% (never narrows: a lower one changes nothing)")
            ->required();
        sub->add_option("--out", o->out_path, "Statement file to write")->required();
        o->node.add_to(sub);
        out.emplace_back(sub, [o] { return run_widen(*o); });
    }
    {
        auto o = std::make_shared<HaltOpts>();
        auto* sub = app.add_subcommand("halt", "Sign a statement halting a release: nodes stop fetching, serving and installing it");
        sub->add_option("--key", o->key_path, "Operator secret key file")->required();
        sub->add_option("--name", o->name, "Patch name")->required();
        sub->add_option("--version", o->version, "Patch version")->required()->check(CLI::Range(std::uint64_t{1}, UINT64_MAX));
        sub->add_option("--out", o->out_path, "Statement file to write")->required();
        out.emplace_back(sub, [o] { return run_halt(*o); });
    }
    {
        auto o = std::make_shared<RevokeOpts>();
        auto* sub = app.add_subcommand("revoke-cert", "Sign a statement revoking a node's certificates");
        sub->add_option("--key", o->key_path, "Operator secret key file")->required();
        sub->add_option("--node-public", o->node_public, "The node's public key file (DATA/node.public)")->required();
        sub->add_option("--out", o->out_path, "Statement file to write")->required();
        out.emplace_back(sub, [o] { return run_revoke(*o); });
    }
    auto o = std::make_shared<EnrollOpts>();
    auto* sub = app.add_subcommand("enroll", "Sign a node certificate: this node key may act with this role in this domain");
    sub->add_option("--key", o->key_path, "Operator secret key file")->required();
    sub->add_option("--node-public", o->node_public, "The node's public key file (DATA/node.public)");
    sub->add_option("--data", o->data_dir, "Or: the node's data folder (its key is created there if missing)");
    sub->add_option("--role", o->role, "origin | super | peer")->capture_default_str();
    sub->add_option("--domain", o->domain, "The node's domain ([a-z0-9-]{1,63})")->required();
    sub->add_option("--days", o->days, "Days until the certificate expires")
        ->check(CLI::Range(1, 3650))
        ->capture_default_str();
    sub->add_option("--out", o->out_path, "Certificate file to write (node.certificate)")->required();
    out.emplace_back(sub, [o] { return run_enroll(*o); });
}

}  // namespace ps::cli
