// Where one patch's bytes live on disk, and the rule that protects them:
// a segment is marked held on disk only after its bytes verified against the
// signed manifest and reached the disk (write, fdatasync, then mark). Syncs are
// batched: write() makes a segment held in memory (it can be served from the
// page cache at once), sync() makes every written segment durable and only
// then records it in the have file. A crash loses at most the unsynced ones.
// A read for upload is hashed again unless a full pass verified the segment
// and the data file's identity has not changed since (node/verify_memo.hpp); a
// slow background scrub (scrub_step) re-checks held segments. A segment that
// no longer matches is never served; it is unmarked instead.
//
// Layout of a download under its folder:
//   data   the patch, segment i at offset i * segment_size (sparse until held)
//   have   the held bitfield (wire form); only ever gains bits between syncs
//
// A failed fdatasync is never taken as done: on Linux the failed pages are
// marked clean, so a second fdatasync "succeeds" without writing them. After a
// failure nothing is marked durable, and the next sync first re-reads every
// segment written since the last good sync, checks it and writes it again;
// one that no longer matches is dropped (fetched again), never marked.
//
// Blocking file I/O on the calling thread. The node calls the const halves
// (check_read, check_write) on libuv's thread pool and the marking halves on
// its loop thread, so hashing and disk I/O stay off the loop.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/bitfield.hpp"
#include "core/bytes.hpp"
#include "core/result.hpp"
#include "node/trust.hpp"
#include "node/verify_memo.hpp"

namespace ps::node {

class SegmentStore {
public:
    // A download under `dir` (created if missing). Segments marked held by an
    // earlier run are re-verified; those that fail are unmarked and fetched again.
    static Result<std::unique_ptr<SegmentStore>> open_download(const std::string& dir, const VerifiedManifest& vm);
    // A complete file served as it is (the origin's copy). Every segment is
    // checked once at open; those that do not match are not offered.
    static Result<std::unique_ptr<SegmentStore>> open_complete(const std::string& file, const VerifiedManifest& vm);
    ~SegmentStore();

    const Bitfield& held() const { return held_; }
    bool complete() const { return held_.all(); }
    std::uint32_t segment_length(std::uint32_t i) const { return manifest_.segment_length(i); }

    // Reads held segment i into `out` and checks it; a mismatch unmarks it.
    Status read(std::uint32_t i, Bytes& out);
    // Any thread: reads segment i and checks it against the manifest, marking
    // nothing (the owner calls forget() on a mismatch). A segment a clean pass
    // verified is not hashed again while the file's identity is unchanged.
    Status check_read(std::uint32_t i, Bytes& out) const;
    // Any thread, one at a time: the background scrub. Checks the segments of
    // `held` from where the last step stopped, about `max_bytes` of them, and
    // returns those that no longer match (the owner forgets them). A pass over
    // every segment whose file identity held still makes its segments trusted.
    struct ScrubStep {
        std::vector<std::uint32_t> bad;
        bool pass_done = false;
    };
    ScrubStep scrub_step(const Bitfield& held, std::uint64_t max_bytes) const;
    // Segment hashes computed so far (storing, serving, passes, scrub).
    std::uint64_t hashes() const { return hashes_.load(std::memory_order_relaxed); }
    // Segments a clean pass verified whose file is unchanged since.
    std::uint32_t trusted_count() const { return memo_.trusted_count(); }
    // Any thread: checks `data` against the manifest and writes it in place.
    // The owner then calls mark_written(). Errors: kBadHash or an I/O error.
    enum class WriteOutcome { Written, BadHash, IoError };
    WriteOutcome check_write(std::uint32_t i, ByteView data, std::string& error) const;
    void mark_written(std::uint32_t i) { held_.set(i); }
    // Stores segment i; the caller verified `data`. Marked on disk by sync().
    Status write(std::uint32_t i, ByteView data);
    // fdatasync the data, then record every synced segment in the have file.
    // On error nothing new is durable; call again to retry.
    Status sync();
    // The same in two halves, so the slow part can run off the loop thread:
    // sync_snapshot() (any thread; touches only the files) makes the data
    // durable and writes `have` (a snapshot of held(), wire form) to the have
    // file; set_durable() (the owner's thread) then records the snapshot.
    // Call set_durable() only after sync_snapshot() succeeded. Segments a
    // retry after a failed sync found damaged are left out of the have file,
    // and set_durable() unmarks them instead.
    Status sync_snapshot(const Bytes& have) const;
    void set_durable(const Bitfield& snapshot);
    bool durable_all() const { return read_only_ || durable_.all(); }
    std::uint32_t unsynced() const { return held_.count() - durable_.count(); }
    // Copies the complete patch to `path` (atomically: temp file, fsync,
    // rename, fsync of the folder). Every segment is checked as it is copied.
    Status export_to(const std::string& path) const;
    // Unmarks segment i (tests and repair).
    void forget(std::uint32_t i);

    // Fault injection for tests, process-wide: after `skip` more syncs
    // (fdatasync or fsync of a store's files or folder), the next `fail` ones
    // fail with EIO. With `lose_writes`, a failing sync of a data file also
    // zeroes the segments written since its last good sync, as a disk that
    // dropped those writes would leave them.
    struct SyncFaults {
        int skip = 0;
        int fail = 0;
        bool lose_writes = false;
    };
    static void inject_sync_faults(SyncFaults);

private:
    SegmentStore(const wire::Manifest& m)
        : manifest_(m), held_(m.segment_count()), durable_(m.segment_count()), on_disk_(m.segment_count()),
          memo_(m.segment_count()), scrub_ok_(m.segment_count()) {}
    Status save_have();
    bool verify_at(std::uint32_t i, Bytes& buf) const;
    bool hash_ok(std::uint32_t i, ByteView data) const;
    // Verifies the segments of `marked` as one pass (open, export); returns those that matched.
    Bitfield verify_pass(const Bitfield& marked) const;
    Status sync_data_locked(Bitfield& snapshot) const;

    wire::Manifest manifest_;
    Bitfield held_;     // verified and written (maybe only in the page cache)
    Bitfield durable_;  // verified, written and synced: what the have file says
    std::string data_path_, have_path_;
    int data_fd_ = -1;
    int have_fd_ = -1;
    bool read_only_ = false;
    // The sync path's own state, touched only under sync_mu_ (sync_snapshot
    // runs on a worker thread): what the have file says, whether the last
    // sync failed, and segments a retry found damaged (set_durable unmarks them).
    mutable std::mutex sync_mu_;
    mutable Bitfield on_disk_;
    mutable bool sync_failed_ = false;
    mutable std::vector<std::uint32_t> lost_;
    // Verification paid once: what passes verified, and the scrub's place.
    mutable VerifyMemo memo_;
    mutable std::atomic<std::uint64_t> hashes_{0};
    mutable std::mutex scrub_mu_;
    mutable std::uint32_t scrub_next_ = 0;
    mutable std::optional<FileIdentity> scrub_start_;
    mutable Bitfield scrub_ok_;
};

}  // namespace ps::node
