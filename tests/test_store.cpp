// node/store under disk faults: a failed fdatasync must not mark anything
// durable, the next sync must really write the segments again (a second
// fdatasync after a failure "succeeds" on Linux without writing the pages the
// first one lost), and export must make the renamed file's name durable.
// Faults come from SegmentStore::inject_sync_faults; files are real.
#include <doctest/doctest.h>

#include <fstream>

#include "node/store.hpp"
#include "support.hpp"

using namespace ps;
using ps::test::TempDir;

namespace {

constexpr std::size_t kSeg = 1u << 20;  // publish's default segment size

struct StoreFixture {
    TempDir dir{"ps-test-store"};
    crypto::KeyPair op = [] {
        REQUIRE(crypto::init());
        return crypto::generate_keypair();
    }();
    node::VerifiedManifest vm;
    Bytes data;
    StoreFixture() {
        test::write_random_file(dir / "patch", 2 * kSeg + 100, 7);
        vm = test::publish(dir / "patch", op, "store-test");
        REQUIRE(vm.manifest.segment_count() == 3);
        auto text = test::slurp(dir / "patch");
        data.assign(text.begin(), text.end());
    }
    ~StoreFixture() { node::SegmentStore::inject_sync_faults({}); }
    ByteView segment(std::uint32_t i) const {
        return ByteView(data).subspan(vm.manifest.segment_offset(i), vm.manifest.segment_length(i));
    }
    // A download under dl/ holding every segment, synced.
    std::unique_ptr<node::SegmentStore> complete_download() const {
        auto s = node::SegmentStore::open_download(dir / "dl", vm);
        REQUIRE(s);
        for (std::uint32_t i = 0; i < 3; ++i) REQUIRE((*s)->write(i, segment(i)));
        REQUIRE((*s)->sync().ok());
        return std::move(*s);
    }
    // The have file as a bitfield.
    Bitfield have_file() const {
        auto text = test::slurp(dir / "dl/have");
        auto b = Bitfield::from_bytes(as_bytes(text), vm.manifest.segment_count());
        REQUIRE(b);
        return *b;
    }
};

}  // namespace

TEST_CASE("store: a failed fdatasync marks nothing durable, and the retry does not trust the lost writes") {
    StoreFixture f;
    auto s = node::SegmentStore::open_download(f.dir / "dl", f.vm);
    REQUIRE(s);
    auto& st = **s;
    REQUIRE(st.write(0, f.segment(0)));
    REQUIRE(st.sync().ok());
    REQUIRE(st.write(1, f.segment(1)));
    REQUIRE(st.write(2, f.segment(2)));
    // The sync fails and the disk dropped the writes since the last good sync
    // (the kernel marks the pages clean: the next fdatasync reports nothing).
    node::SegmentStore::inject_sync_faults({.skip = 0, .fail = 1, .lose_writes = true});
    auto r1 = st.sync();
    REQUIRE_FALSE(r1.ok());
    CHECK(r1.error().find("cannot sync") != std::string::npos);
    CHECK(r1.error().find("nothing marked durable") != std::string::npos);
    CHECK_FALSE(st.durable_all());
    CHECK(st.unsynced() == 2);
    CHECK(f.have_file().count() == 1);
    // Retry: segments 1 and 2 are read back, no longer match, and are dropped,
    // never marked; segment 0, synced before, stays.
    REQUIRE(st.sync().ok());
    CHECK(st.held().test(0));
    CHECK_FALSE(st.held().test(1));
    CHECK_FALSE(st.held().test(2));
    CHECK(f.have_file().test(0));
    CHECK(f.have_file().count() == 1);
    CHECK_FALSE(st.export_to(f.dir / "out").ok());
    // Fetched again, they sync and export.
    REQUIRE(st.write(1, f.segment(1)));
    REQUIRE(st.write(2, f.segment(2)));
    REQUIRE(st.sync().ok());
    CHECK(st.durable_all());
    CHECK(f.have_file().all());
    REQUIRE(st.export_to(f.dir / "out").ok());
    CHECK(test::slurp(f.dir / "out") == test::slurp(f.dir / "patch"));
}

TEST_CASE("store: after a failed sync the split sync (worker half, loop half) rewrites and then marks") {
    StoreFixture f;
    auto s = node::SegmentStore::open_download(f.dir / "dl", f.vm);
    REQUIRE(s);
    auto& st = **s;
    for (std::uint32_t i = 0; i < 3; ++i) REQUIRE(st.write(i, f.segment(i)));
    node::SegmentStore::inject_sync_faults({.skip = 0, .fail = 1, .lose_writes = false});
    Bitfield snap = st.held();
    REQUIRE_FALSE(st.sync_snapshot(snap.to_bytes()).ok());
    CHECK(f.have_file().none());
    CHECK(st.unsynced() == 3);
    // The pages survived (page cache): the retry rewrites them, syncs, marks.
    REQUIRE(st.sync_snapshot(snap.to_bytes()).ok());
    st.set_durable(snap);
    CHECK(st.durable_all());
    CHECK(f.have_file().all());
    // A restart trusts the mark only after re-checking the bytes.
    s->reset();
    auto again = node::SegmentStore::open_download(f.dir / "dl", f.vm);
    REQUIRE(again);
    CHECK((*again)->complete());
}

TEST_CASE("store: export fsyncs the folder after the rename, and a failure there is reported") {
    StoreFixture f;
    auto s = f.complete_download();
    auto& st = *s;
    // Export syncs twice: the temp file, then the folder after the rename.
    node::SegmentStore::inject_sync_faults({.skip = 1, .fail = 1, .lose_writes = false});
    auto e = st.export_to(f.dir / "out");
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().find("cannot sync folder") != std::string::npos);
    node::SegmentStore::inject_sync_faults({});
    REQUIRE(st.export_to(f.dir / "out").ok());
}

TEST_CASE("store: export checks every segment and refuses bytes that changed on disk") {
    StoreFixture f;
    auto s = f.complete_download();
    auto& st = *s;
    test::flip_byte(f.dir / "dl/data", 1000);
    auto e = st.export_to(f.dir / "out");
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().find("no longer matches the manifest") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(f.dir / "out"));
    CHECK_FALSE(std::filesystem::exists(f.dir / "out.part"));
}
