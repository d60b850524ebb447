// Operator CLI (keygen, publish, verify, ...) driven as a child process, the
// way an operator or a script uses it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

#include "support.hpp"

using ps::test::flip_byte;
using ps::test::Run;
using ps::test::run_cli;
using ps::test::slurp;
using ps::test::TempDir;

namespace {

void write_random(const std::string& path, std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    std::ofstream(path, std::ios::binary) << s;
}

// keygen + publish of a patch; returns the manifest path.
struct Published {
    std::string key, pub, patch, manifest;
};
Published publish_patch(const TempDir& d, std::size_t size, std::vector<std::string> extra = {}) {
    Published p{d / "op.key", d / "op.pub", d / "patch.bin", d / "patch.manifest"};
    auto k = run_cli(d, {"keygen", "--secret", p.key, "--public", p.pub});
    REQUIRE_MESSAGE(k.code == 0, k.err);
    write_random(p.patch, size, 42);
    std::vector<std::string> args{"publish",  "--key",      p.key,         "--file", p.patch,
                                  "--name",   "ims-client", "--version",   "3",      "--out",
                                  p.manifest, "--label",    "4.2.1-hotfix"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_cli(d, args);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return p;
}

}  // namespace

TEST_CASE("cli: keygen writes a 0600 secret key and refuses to overwrite") {
    TempDir d;
    auto r = run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "op.pub"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    struct stat st {};
    REQUIRE(::stat((d / "op.key").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto secret_before = slurp(d / "op.key");
    CHECK(secret_before.rfind("patchswarm-ed25519-secret-v1\n", 0) == 0);
    CHECK(slurp(d / "op.pub").rfind("patchswarm-ed25519-public-v1\n", 0) == 0);
    // The secret never appears on stdout/stderr.
    auto seed_hex = secret_before.substr(secret_before.find('\n') + 1, 64);
    CHECK(r.out.find(seed_hex) == std::string::npos);

    auto again = run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "other.pub"});
    CHECK(again.code != 0);
    CHECK(again.err.find("already exists; refusing to overwrite it") != std::string::npos);
    CHECK(slurp(d / "op.key") == secret_before);
    CHECK_FALSE(fs::exists(d / "other.pub"));
    // An existing public file also stops it, and no secret file is left behind.
    auto pub_exists = run_cli(d, {"keygen", "--secret", d / "new.key", "--public", d / "op.pub"});
    CHECK(pub_exists.code != 0);
    CHECK_FALSE(fs::exists(d / "new.key"));
}

TEST_CASE("cli: publish refuses a secret key readable by group or others") {
    TempDir d;
    auto k = run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "op.pub"});
    REQUIRE(k.code == 0);
    ::chmod((d / "op.key").c_str(), 0640);
    write_random(d / "p.bin", 1000, 1);
    auto r = run_cli(d, {"publish", "--key", d / "op.key", "--file", d / "p.bin", "--name", "x",
                         "--version", "1", "--out", d / "p.manifest"});
    CHECK(r.code != 0);
    CHECK(r.err.find("accessible by group or others (mode 0640)") != std::string::npos);
    CHECK_FALSE(fs::exists(d / "p.manifest"));
}

TEST_CASE("cli: publish and verify a 3.5 MiB patch in 4 segments") {
    TempDir d;
    auto p = publish_patch(d, 3 * (1u << 20) + (1u << 19));
    auto r = run_cli(d, {"verify", "--manifest", p.manifest, "--trust", p.pub, "--file", p.patch});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.out.rfind("OK ims-client version 3 4.2.1-hotfix", 0) == 0);
    CHECK(r.out.find("4 segments, 3670016 bytes") != std::string::npos);
    CHECK(r.err.empty());
    // No temporary file is left beside the manifest.
    int files = 0;
    for (auto& e : fs::directory_iterator(d.path))
        if (e.path().filename().string().find(".tmp") != std::string::npos) ++files;
    CHECK(files == 0);
}

TEST_CASE("cli: verify with a flipped byte in the patch names the segment") {
    TempDir d;
    auto p = publish_patch(d, 3 * (1u << 20) + (1u << 19));
    flip_byte(p.patch, 2 * (1u << 20) + 12345);  // inside segment 2
    auto r = run_cli(d, {"verify", "--manifest", p.manifest, "--trust", p.pub, "--file", p.patch});
    CHECK(r.code != 0);
    CHECK(r.err == "patchswarm verify: segment 2 does not match its hash\n");
    CHECK(r.out.empty());
}

TEST_CASE("cli: verify rejects a patch of the wrong size") {
    TempDir d;
    auto p = publish_patch(d, 200000, {"--segment-size", "65536"});
    std::ofstream(p.patch, std::ios::binary | std::ios::app) << 'x';
    auto r = run_cli(d, {"verify", "--manifest", p.manifest, "--trust", p.pub, "--file", p.patch});
    CHECK(r.code != 0);
    CHECK(r.err.find("is 200001 bytes, the manifest says 200000") != std::string::npos);
}

TEST_CASE("cli: verify with a flipped signature byte fails with bad signature") {
    TempDir d;
    auto p = publish_patch(d, 100000, {"--segment-size", "65536"});
    auto size = fs::file_size(p.manifest);
    flip_byte(p.manifest, size - 10);  // the signature is the last 64 bytes
    auto r = run_cli(d, {"verify", "--manifest", p.manifest, "--trust", p.pub});
    CHECK(r.code != 0);
    CHECK(r.err == "patchswarm verify: bad signature\n");
}

TEST_CASE("cli: verify refuses a manifest signed by a key it does not trust") {
    TempDir d;
    auto p = publish_patch(d, 100000, {"--segment-size", "65536"});
    auto k = run_cli(d, {"keygen", "--secret", d / "other.key", "--public", d / "other.pub"});
    REQUIRE(k.code == 0);
    auto r = run_cli(d, {"verify", "--manifest", p.manifest, "--trust", d / "other.pub"});
    CHECK(r.code != 0);
    CHECK(r.err.find("patchswarm verify: unknown signing key ") == 0);
}

// ---------------------------------------------------------------- Phase B

TEST_CASE("cli: offline signing, publish --unsigned then sign elsewhere") {
    TempDir d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "op.pub"}).code == 0);
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "x.key", "--public", d / "x.pub"}).code == 0);
    write_random(d / "p.bin", 150000, 3);
    auto u = run_cli(d, {"publish", "--unsigned", "--signer-public", d / "op.pub", "--file",
                         d / "p.bin", "--name", "app", "--version", "1", "--out", d / "u.manifest",
                         "--segment-size", "65536"});
    REQUIRE_MESSAGE(u.code == 0, u.err);
    CHECK(u.out.find("UNSIGNED") != std::string::npos);
    auto v0 = run_cli(d, {"verify", "--manifest", d / "u.manifest", "--trust", d / "op.pub"});
    CHECK(v0.code != 0);
    CHECK(v0.err == "patchswarm verify: manifest is unsigned\n");
    auto wrong = run_cli(d, {"sign", "--key", d / "x.key", "--manifest", d / "u.manifest", "--out",
                             d / "s.manifest"});
    CHECK(wrong.code != 0);
    CHECK(wrong.err.find("the manifest names signer key") != std::string::npos);
    CHECK_FALSE(fs::exists(d / "s.manifest"));
    auto s = run_cli(d, {"sign", "--key", d / "op.key", "--manifest", d / "u.manifest", "--out",
                         d / "s.manifest"});
    REQUIRE_MESSAGE(s.code == 0, s.err);
    auto v = run_cli(d, {"verify", "--manifest", d / "s.manifest", "--trust", d / "op.pub",
                         "--file", d / "p.bin"});
    CHECK_MESSAGE(v.code == 0, v.err);
    // --unsigned together with --key is refused.
    auto both = run_cli(d, {"publish", "--unsigned", "--key", d / "op.key", "--file", d / "p.bin",
                            "--name", "app", "--version", "1", "--out", d / "z.manifest"});
    CHECK(both.code != 0);
    CHECK(both.err.find("--unsigned needs --signer-public and no --key") != std::string::npos);
}

TEST_CASE("cli: verify --state refuses a rollback across restarts") {
    TempDir d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "op.pub"}).code == 0);
    write_random(d / "p.bin", 100000, 4);
    for (auto v : {"4", "5"}) {
        auto r = run_cli(
            d, {"publish", "--key", d / "op.key", "--file", d / "p.bin", "--name", "app",
                "--version", v, "--out", d / (std::string("v") + v), "--segment-size", "65536"});
        REQUIRE_MESSAGE(r.code == 0, r.err);
    }
    auto a = run_cli(
        d, {"verify", "--manifest", d / "v5", "--trust", d / "op.pub", "--state", d / "state"});
    REQUIRE_MESSAGE(a.code == 0, a.err);
    auto state = slurp(d / "state");
    auto b = run_cli(
        d, {"verify", "--manifest", d / "v4", "--trust", d / "op.pub", "--state", d / "state"});
    CHECK(b.code != 0);
    CHECK(b.err == "patchswarm verify: rollback: app version 4 is older than accepted version 5\n");
    CHECK(slurp(d / "state") == state);
    auto again = run_cli(
        d, {"verify", "--manifest", d / "v5", "--trust", d / "op.pub", "--state", d / "state"});
    CHECK_MESSAGE(again.code == 0, again.err);
}

TEST_CASE("cli: rotate-key revokes the old key and its manifests are refused") {
    TempDir d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "old.key", "--public", d / "old.pub"}).code == 0);
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "new.key", "--public", d / "new.pub"}).code == 0);
    write_random(d / "p.bin", 100000, 5);
    auto pub = [&](const std::string& key, const std::string& version, const std::string& out) {
        auto r = run_cli(d, {"publish", "--key", d / key, "--file", d / "p.bin", "--name", "app",
                             "--version", version, "--out", d / out, "--segment-size", "65536"});
        REQUIRE_MESSAGE(r.code == 0, r.err);
    };
    pub("old.key", "1", "old.manifest");
    pub("new.key", "2", "new.manifest");
    auto rot = run_cli(d, {"rotate-key", "--key", d / "old.key", "--new-public", d / "new.pub",
                           "--trust", d / "trust", "--revoke-old"});
    REQUIRE_MESSAGE(rot.code == 0, rot.err);
    CHECK(slurp(d / "trust").rfind("patchswarm-trust-v1\nkey ", 0) == 0);
    auto ok = run_cli(d, {"verify", "--manifest", d / "new.manifest", "--trust", d / "trust"});
    CHECK_MESSAGE(ok.code == 0, ok.err);
    auto old = run_cli(d, {"verify", "--manifest", d / "old.manifest", "--trust", d / "trust"});
    CHECK(old.code != 0);
    CHECK(old.err.find("patchswarm verify: signing key ") == 0);
    CHECK(old.err.find(" was revoked") != std::string::npos);
    // The revoked key can no longer rotate.
    auto again = run_cli(d, {"rotate-key", "--key", d / "old.key", "--new-public", d / "old.pub",
                             "--trust", d / "trust"});
    CHECK(again.code != 0);
    CHECK(again.err.find("is not trusted (unknown or revoked)") != std::string::npos);
}

TEST_CASE("cli: trust-apply takes in a rotation statement on a node") {
    TempDir d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "old.key", "--public", d / "old.pub"}).code == 0);
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "new.key", "--public", d / "new.pub"}).code == 0);
    // The node's trust file, installed with the old key only.
    auto old_pub = slurp(d / "old.pub");
    std::ofstream(d / "node.trust")
        << "patchswarm-trust-v1\nkey " << old_pub.substr(old_pub.find('\n') + 1);
    auto rot = run_cli(d, {"rotate-key", "--key", d / "old.key", "--new-public", d / "new.pub",
                           "--trust", d / "operator.trust", "--revoke-old", "--out", d / "stmt"});
    REQUIRE_MESSAGE(rot.code == 0, rot.err);
    // A tampered statement is refused and the node's file is untouched.
    auto stmt = slurp(d / "stmt");
    auto bad = stmt;
    bad[bad.size() - 2] = bad[bad.size() - 2] == 'a' ? 'b' : 'a';
    std::ofstream(d / "bad.stmt") << bad;
    auto before = slurp(d / "node.trust");
    auto r_bad =
        run_cli(d, {"trust-apply", "--trust", d / "node.trust", "--statement", d / "bad.stmt"});
    CHECK(r_bad.code != 0);
    CHECK(r_bad.err == "patchswarm trust-apply: key rotation: bad signature\n");
    CHECK(slurp(d / "node.trust") == before);

    auto r = run_cli(d, {"trust-apply", "--trust", d / "node.trust", "--statement", d / "stmt"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    write_random(d / "p.bin", 70000, 6);
    for (auto [key, out] : {std::pair{"old.key", "o.manifest"}, std::pair{"new.key", "n.manifest"}})
        REQUIRE(run_cli(d, {"publish", "--key", d / key, "--file", d / "p.bin", "--name", "app",
                            "--version", "1", "--out", d / out, "--segment-size", "65536"})
                    .code == 0);
    CHECK(
        run_cli(d, {"verify", "--manifest", d / "n.manifest", "--trust", d / "node.trust"}).code ==
        0);
    auto o = run_cli(d, {"verify", "--manifest", d / "o.manifest", "--trust", d / "node.trust"});
    CHECK(o.code != 0);
    CHECK(o.err.find(" was revoked") != std::string::npos);
}

TEST_CASE("cli: inspect prints every field, as text and as JSON") {
    TempDir d;
    auto p = publish_patch(d, 3 * (1u << 20) + (1u << 19), {"--mandatory"});
    auto t = run_cli(d, {"inspect", "--manifest", p.manifest});
    REQUIRE_MESSAGE(t.code == 0, t.err);
    CHECK(t.out.find("  name          ims-client\n") != std::string::npos);
    CHECK(t.out.find("  segments      4 of 1048576 bytes\n") != std::string::npos);
    CHECK(t.out.find("  mandatory     yes\n") != std::string::npos);
    auto j = run_cli(d, {"inspect", "--manifest", p.manifest, "--json"});
    REQUIRE_MESSAGE(j.code == 0, j.err);
    CHECK(j.out.find("\"name\": \"ims-client\"") != std::string::npos);
    CHECK(j.out.find("\"version\": 3") != std::string::npos);
    CHECK(j.out.find("\"label\": \"4.2.1-hotfix\"") != std::string::npos);
    CHECK(j.out.find("\"segment_count\": 4") != std::string::npos);
    CHECK(j.out.find("\"mandatory\": true") != std::string::npos);
    CHECK(j.out.find("\"signed\": true") != std::string::npos);
    std::ofstream(d / "junk") << "not a manifest";
    auto bad = run_cli(d, {"inspect", "--manifest", d / "junk"});
    CHECK(bad.code != 0);
    CHECK(bad.err.rfind("patchswarm inspect: manifest: ", 0) == 0);
}

TEST_CASE("cli: every operator command has --help") {
    TempDir d;
    for (std::string cmd :
         {"keygen", "publish", "verify", "sign", "inspect", "rotate-key", "trust-apply"}) {
        INFO(cmd);
        auto r = run_cli(d, {cmd, "--help"});
        CHECK(r.code == 0);
        CHECK(r.out.find("Usage:") != std::string::npos);
    }
}

TEST_CASE("cli: publish refuses an invalid name before hashing") {
    TempDir d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "op.pub"}).code == 0);
    auto r = run_cli(d, {"publish", "--key", d / "op.key", "--file", d / "missing.bin", "--name",
                         "../etc", "--version", "1", "--out", d / "m"});
    CHECK(r.code != 0);
    CHECK(r.err.find("name must be") != std::string::npos);
}

TEST_CASE("cli: publishing a 2 GiB sparse file keeps peak memory under 64 MiB") {
    TempDir d;
    REQUIRE(run_cli(d, {"keygen", "--secret", d / "op.key", "--public", d / "op.pub"}).code == 0);
    {
        int fd = ::open((d / "big.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, off_t{2} << 30) == 0);
        REQUIRE(::pwrite(fd, "x", 1, (off_t{2} << 30) - 1) == 1);  // one non-zero byte, at the end
        ::close(fd);
    }
    auto r = run_cli(d, {"publish", "--key", d / "op.key", "--file", d / "big.bin", "--name", "big",
                         "--version", "1", "--out", d / "big.manifest"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.out.find("2048 segments of 1048576 bytes, 2147483648 bytes total") !=
          std::string::npos);
    // ru_maxrss also counts the test process image the child was forked from,
    // so this is an upper bound on publish's own peak.
    MESSAGE("publish peak RSS: " << r.maxrss_kib << " KiB");
    CHECK(r.maxrss_kib > 0);
    CHECK(r.maxrss_kib < 64 * 1024);
}

TEST_CASE("cli: publish writes format 2 by default and format 1 on request, and both verify against the file") {
    TempDir d;
    auto p = publish_patch(d, 3 * (1 << 20) + 17);
    auto j = run_cli(d, {"inspect", "--manifest", p.manifest, "--json"});
    REQUIRE_MESSAGE(j.code == 0, j.err);
    CHECK_MESSAGE(j.out.find("\"format\": 2") != std::string::npos, j.out);
    auto v = run_cli(d, {"verify", "--manifest", p.manifest, "--trust", p.pub, "--file", p.patch});
    CHECK_MESSAGE(v.code == 0, v.err);

    TempDir d1;
    auto p1 = publish_patch(d1, 3 * (1 << 20) + 17, {"--manifest-format", "1"});
    auto j1 = run_cli(d1, {"inspect", "--manifest", p1.manifest, "--json"});
    REQUIRE_MESSAGE(j1.code == 0, j1.err);
    CHECK_MESSAGE(j1.out.find("\"format\": 1") != std::string::npos, j1.out);
    auto v1 = run_cli(d1, {"verify", "--manifest", p1.manifest, "--trust", p1.pub, "--file", p1.patch});
    CHECK_MESSAGE(v1.code == 0, v1.err);

    auto bad = run_cli(d1, {"publish", "--key", p1.key, "--file", p1.patch, "--name", "x", "--version", "1",
                            "--out", d1 / "x.manifest", "--manifest-format", "3"});
    CHECK(bad.code == 2);  // a usage error
    CHECK_MESSAGE(bad.err.find("--manifest-format") != std::string::npos, bad.err);
}
