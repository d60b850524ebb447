// Verification paid once (node/verify_memo.hpp): a segment a full pass verified
// is served without hashing it again while the data file's identity is
// unchanged; a write to the file behind the store's back sends reads back to
// hashing, so a corrupted segment is still never served; the scrub finds
// damage by itself. Real files; hashes are counted by the store.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "node/node.hpp"
#include "node/store.hpp"
#include "support.hpp"

using namespace ps;
using ps::test::TempDir;

namespace {

constexpr std::size_t kSeg = 1u << 20;

// Lets the kernel's timestamp clock move past the last change of a file, so
// that a pass starting now can be trusted (a write in the same tick could not
// be told apart).
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

// Overwrites one byte in place through another descriptor, as a process
// other than the node would; with keep_mtime it also sets mtime back, which
// leaves ctime as the only witness.
void corrupt_behind_back(const std::string& path, std::uint64_t off, bool keep_mtime = false) {
    struct stat before {};
    REQUIRE(::stat(path.c_str(), &before) == 0);
    test::flip_byte(path, off);
    if (keep_mtime) {
        struct timespec times[2] = {before.st_atim, before.st_mtim};
        REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
    }
}

struct Fixture {
    TempDir dir{"ps-test-verify"};
    crypto::KeyPair op = [] {
        REQUIRE(crypto::init());
        return crypto::generate_keypair();
    }();
    node::VerifiedManifest vm;
    std::string file;
    Fixture() {
        file = dir / "patch";
        test::write_random_file(file, 3 * kSeg + 100, 11);  // 4 segments
        vm = test::publish(file, op, "verify-test");
        settle();
    }
    std::unique_ptr<node::SegmentStore> open_complete() const {
        auto s = node::SegmentStore::open_complete(file, vm);
        REQUIRE(s);
        return std::move(*s);
    }
};

}  // namespace

TEST_CASE("store: serving a segment the opening pass verified does not hash it again") {
    Fixture f;
    auto s = f.open_complete();
    CHECK(s->hashes() == 4);  // the pass at open
    CHECK(s->trusted_count() == 4);
    auto want = test::slurp(f.file);
    Bytes out;
    for (int round = 0; round < 3; ++round)
        for (std::uint32_t i = 0; i < 4; ++i) {
            REQUIRE(s->check_read(i, out).ok());
            CHECK(std::string(out.begin(), out.end()) == want.substr(i * kSeg, s->segment_length(i)));
        }
    CHECK(s->hashes() == 4);  // twelve reads served, none hashed
}

TEST_CASE("store: a segment corrupted on disk behind the store's back is never served once the file's identity changed") {
    Fixture f;
    auto s = f.open_complete();
    Bytes out;
    SUBCASE("overwritten in place") { corrupt_behind_back(f.file, kSeg + 5); }
    SUBCASE("overwritten with mtime set back (ctime still moves)") { corrupt_behind_back(f.file, kSeg + 5, true); }
    SUBCASE("the whole file rewritten in place with one byte changed") {
        auto text = test::slurp(f.file);
        text[kSeg + 5] ^= 0x20;
        std::ofstream(f.file, std::ios::binary | std::ios::trunc) << text;
    }
    auto before = s->hashes();
    CHECK_FALSE(s->check_read(1, out).ok());
    CHECK(s->hashes() == before + 1);
    // The untouched segments are still served, but hashed again: the identity changed.
    CHECK(s->check_read(0, out).ok());
    CHECK(s->check_read(2, out).ok());
    CHECK(s->hashes() == before + 3);
    // A later read of the damaged segment is refused again, never trusted.
    CHECK_FALSE(s->check_read(1, out).ok());
}

TEST_CASE("store: the scrub finds a damaged segment, and its clean pass makes reads hash-free again") {
    Fixture f;
    auto s = f.open_complete();
    corrupt_behind_back(f.file, 2 * kSeg + 7);
    settle();
    // Two steps of about one segment each, then the rest.
    auto a = s->scrub_step(s->held(), kSeg);
    CHECK(a.bad.empty());
    CHECK_FALSE(a.pass_done);
    auto b = s->scrub_step(s->held(), 4 * kSeg);
    CHECK(b.pass_done);
    REQUIRE(b.bad.size() == 1);
    CHECK(b.bad[0] == 2);
    // The pass saw no change of identity: the three good segments are trusted.
    CHECK(s->trusted_count() == 3);
    Bytes out;
    auto before = s->hashes();
    CHECK(s->check_read(0, out).ok());
    CHECK(s->check_read(3, out).ok());
    CHECK(s->hashes() == before);
    CHECK_FALSE(s->check_read(2, out).ok());
    CHECK(s->hashes() == before + 1);
}

TEST_CASE("store: a pass that saw the file change, or began in the tick of a change, trusts nothing") {
    Fixture f;
    auto s = f.open_complete();
    // A write in the middle of a scrub pass.
    auto a = s->scrub_step(s->held(), kSeg);
    corrupt_behind_back(f.file, 3 * kSeg + 1);
    auto b = s->scrub_step(s->held(), 4 * kSeg);
    CHECK(b.pass_done);
    CHECK(b.bad == std::vector<std::uint32_t>{3});
    CHECK(s->trusted_count() == 0);
    // Right after a write the kernel's timestamp tick has (nearly always) not
    // moved on: such a pass is not trusted even though every segment matched.
    bool racy_seen = false;
    for (int i = 0; i < 20 && !racy_seen; ++i) {
        test::write_random_file(f.file, 3 * kSeg + 100, 11);
        int fd = ::open(f.file.c_str(), O_RDONLY);
        REQUIRE(fd >= 0);
        racy_seen = !node::VerifyMemo::begin_pass(fd);
        ::close(fd);
    }
    CHECK(racy_seen);
    settle();
    int fd = ::open(f.file.c_str(), O_RDONLY);
    CHECK(node::VerifyMemo::begin_pass(fd).has_value());
    ::close(fd);
}

TEST_CASE("store: a download's export is a clean pass, after which serving does not hash") {
    Fixture f;
    auto st = node::SegmentStore::open_download(f.dir / "dl", f.vm);
    REQUIRE(st);
    auto& s = **st;
    auto text = test::slurp(f.file);
    for (std::uint32_t i = 0; i < 4; ++i) {
        auto seg = as_bytes(std::string_view(text).substr(i * kSeg, s.segment_length(i)));
        std::string error;
        REQUIRE(s.check_write(i, seg, error) == node::SegmentStore::WriteOutcome::Written);
        s.mark_written(i);
    }
    REQUIRE(s.sync().ok());
    Bytes out;
    auto before = s.hashes();
    CHECK(s.check_read(0, out).ok());  // written by us since the last pass: hashed
    CHECK(s.hashes() == before + 1);
    settle();
    REQUIRE(s.export_to(f.dir / "out").ok());
    CHECK(s.trusted_count() == 4);
    before = s.hashes();
    for (std::uint32_t i = 0; i < 4; ++i) CHECK(s.check_read(i, out).ok());
    CHECK(s.hashes() == before);
    corrupt_behind_back(f.dir / "dl/data", 10);
    CHECK_FALSE(s.check_read(0, out).ok());
}

namespace {

node::NodeOptions node_options(const std::string& data_dir, std::uint16_t bootstrap_port, std::uint64_t scrub_rate) {
    node::NodeOptions o;
    o.data_dir = data_dir;
    o.dht.max_peer_req_per_sec = -1;
    if (bootstrap_port) o.dht.bootstrap = {"127.0.0.1:" + std::to_string(bootstrap_port)};
    o.lookup_interval_ms = 300;
    o.scrub_rate = scrub_rate;
    return o;
}

transfer::Identity node_identity(Role role, const std::string& domain) {
    auto kp = crypto::generate_keypair();
    return {kp.sk, kp.pk, role, domain};
}

void shut(transfer::Loop& loop, std::vector<node::Node*> nodes) {
    int pending = static_cast<int>(nodes.size());
    for (auto* n : nodes) n->shutdown([&] { --pending; });
    CHECK(test::run_until(loop, [&] { return pending == 0; }, 10'000));
}

}  // namespace

TEST_CASE("node: a holder serves a verified patch to a downloader without hashing its segments again") {
    Fixture f;
    transfer::Loop loop;
    node::Node origin(loop, node_options(f.dir / "origin", 0, 0), node_identity(Role::Origin, "core"));
    REQUIRE(origin.start());
    REQUIRE(origin.serve(f.vm, f.file));
    CHECK(origin.status().segment_hashes == 4);  // the pass at open
    node::Node peer(loop, node_options(f.dir / "peer", origin.dht_port(), 0), node_identity(Role::Peer, "d1"));
    REQUIRE(peer.start());
    std::optional<Status> done;
    REQUIRE(peer.fetch(f.vm, f.dir / "out", [&](Status s) { done = s; }));
    REQUIRE(test::run_until(loop, [&] { return done.has_value(); }, 30'000));
    CHECK(done->ok());
    CHECK(test::slurp(f.dir / "out") == test::slurp(f.file));
    CHECK(origin.stats(f.vm.id)->bytes_uploaded == f.vm.manifest.total_size);
    CHECK(origin.status().segment_hashes == 4);  // four segments served, none hashed
    shut(loop, {&peer, &origin});
}

TEST_CASE("node: the background scrub drops a segment damaged on disk, and it is no longer offered") {
    Fixture f;
    transfer::Loop loop;
    node::Node origin(loop, node_options(f.dir / "origin", 0, 64u << 20), node_identity(Role::Origin, "core"));
    REQUIRE(origin.start());
    REQUIRE(origin.serve(f.vm, f.file));
    corrupt_behind_back(f.file, kSeg + 99);
    REQUIRE(test::run_until(loop, [&] { return origin.status().scrub_dropped == 1; }, 10'000));
    auto st = origin.status();
    REQUIRE(st.swarms.size() == 1);
    CHECK(st.swarms[0].held == 3);
    // A downloader gets the three good segments from it and never the damaged one.
    node::Node peer(loop, node_options(f.dir / "peer", origin.dht_port(), 0), node_identity(Role::Peer, "d1"));
    REQUIRE(peer.start());
    REQUIRE(peer.fetch(f.vm, f.dir / "out", [](Status) {}));
    auto ps = [&] { return peer.stats(f.vm.id); };
    CHECK(test::run_until(loop, [&] { return ps() && ps()->segments_verified == 3; }, 30'000));
    test::run_until(loop, [] { return false; }, 500);
    CHECK(ps()->segments_verified == 3);
    CHECK(ps()->segments_rejected == 0);
    shut(loop, {&peer, &origin});
}
