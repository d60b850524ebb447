#include "node/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "crypto/crypto.hpp"

namespace ps::node {

namespace {

std::string sys_error(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

Status pread_all(int fd, std::uint8_t* buf, std::size_t n, std::uint64_t off, const std::string& path) {
    while (n) {
        ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return err(sys_error("cannot read", path));
        if (r == 0) return err("unexpected end of " + path);
        buf += r;
        off += static_cast<std::uint64_t>(r);
        n -= static_cast<std::size_t>(r);
    }
    return {};
}

Status pwrite_all(int fd, const std::uint8_t* buf, std::size_t n, std::uint64_t off, const std::string& path) {
    while (n) {
        ssize_t r = ::pwrite(fd, buf, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return err(sys_error("cannot write", path));
        buf += r;
        off += static_cast<std::uint64_t>(r);
        n -= static_cast<std::size_t>(r);
    }
    return {};
}

std::mutex g_faults_mu;
SegmentStore::SyncFaults g_faults;

// Whether the fault hook fails this sync; `lose` says whether it also drops writes.
bool injected_sync_failure(bool& lose) {
    std::lock_guard lock(g_faults_mu);
    if (g_faults.skip > 0) {
        --g_faults.skip;
        return false;
    }
    if (g_faults.fail <= 0) return false;
    --g_faults.fail;
    lose = g_faults.lose_writes;
    return true;
}

// fdatasync (data_only) or fsync, through the fault hook. -1 with errno on failure.
int sync_fd(int fd, bool data_only, bool* lose = nullptr) {
    bool l = false;
    if (injected_sync_failure(l)) {
        if (lose) *lose = l;
        errno = EIO;
        return -1;
    }
    return data_only ? ::fdatasync(fd) : ::fsync(fd);
}

// After a rename: the new name is durable only once its folder is synced.
Status sync_folder_of(const std::string& path) {
    auto dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err(sys_error("cannot open folder", dir.string()));
    Status st;
    if (sync_fd(fd, false) != 0) st = err(sys_error("cannot sync folder", dir.string()) + " after renaming " + path);
    ::close(fd);
    return st;
}

}  // namespace

void SegmentStore::inject_sync_faults(SyncFaults f) {
    std::lock_guard lock(g_faults_mu);
    g_faults = f;
}

SegmentStore::~SegmentStore() {
    if (data_fd_ >= 0) ::close(data_fd_);
    if (have_fd_ >= 0) ::close(have_fd_);
}

bool SegmentStore::hash_ok(std::uint32_t i, ByteView data) const {
    hashes_.fetch_add(1, std::memory_order_relaxed);
    return bool(wire::check_segment(manifest_, i, data));
}

bool SegmentStore::verify_at(std::uint32_t i, Bytes& buf) const {
    buf.resize(manifest_.segment_length(i));
    if (!pread_all(data_fd_, buf.data(), buf.size(), manifest_.segment_offset(i), data_path_)) return false;
    return hash_ok(i, buf);
}

Bitfield SegmentStore::verify_pass(const Bitfield& marked) const {
    auto start = VerifyMemo::begin_pass(data_fd_);
    Bitfield ok(marked.size());
    Bytes buf;
    for (std::uint32_t i = 0; i < marked.size(); ++i)
        if (marked.test(i) && verify_at(i, buf)) ok.set(i);
    memo_.end_pass(data_fd_, start, ok);
    return ok;
}

SegmentStore::ScrubStep SegmentStore::scrub_step(const Bitfield& held, std::uint64_t max_bytes) const {
    std::lock_guard lock(scrub_mu_);
    ScrubStep out;
    const std::uint32_t n = manifest_.segment_count();
    if (scrub_next_ == 0) {
        scrub_start_ = VerifyMemo::begin_pass(data_fd_);
        scrub_ok_ = Bitfield(n);
    }
    Bytes buf;
    std::uint64_t done = 0;
    for (; scrub_next_ < n && done < max_bytes; ++scrub_next_) {
        const std::uint32_t i = scrub_next_;
        if (!held.test(i)) continue;
        done += manifest_.segment_length(i);
        if (verify_at(i, buf)) {
            scrub_ok_.set(i);
        } else {
            memo_.distrust(i);
            out.bad.push_back(i);
        }
    }
    if (scrub_next_ == n) {
        memo_.end_pass(data_fd_, scrub_start_, scrub_ok_);
        scrub_next_ = 0;
        out.pass_done = true;
    }
    return out;
}

Result<std::unique_ptr<SegmentStore>> SegmentStore::open_download(const std::string& dir, const VerifiedManifest& vm) {
    return catch_as_error("store", [&]() -> Result<std::unique_ptr<SegmentStore>> {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) return err("cannot create " + dir + ": " + ec.message());
        std::unique_ptr<SegmentStore> s(new SegmentStore(vm.manifest));
        s->data_path_ = dir + "/data";
        s->have_path_ = dir + "/have";
        s->data_fd_ = ::open(s->data_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->data_fd_ < 0) return err(sys_error("cannot open", s->data_path_));
        if (::ftruncate(s->data_fd_, static_cast<off_t>(vm.manifest.total_size)) != 0)
            return err(sys_error("cannot size", s->data_path_));
        s->have_fd_ = ::open(s->have_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->have_fd_ < 0) return err(sys_error("cannot open", s->have_path_));

        // Resume: trust no mark without checking the bytes behind it.
        Bytes have((s->held_.size() + 7) / 8);
        ssize_t n = ::pread(s->have_fd_, have.data(), have.size(), 0);
        if (n == static_cast<ssize_t>(have.size())) {
            auto marked = Bitfield::from_bytes(have, s->held_.size());
            if (marked) s->held_ = s->verify_pass(*marked);
        }
        s->durable_ = s->held_;
        s->on_disk_ = s->held_;
        if (auto st = s->save_have(); !st) return std::move(st).take_error();
        return s;
    });
}

Result<std::unique_ptr<SegmentStore>> SegmentStore::open_complete(const std::string& file, const VerifiedManifest& vm) {
    return catch_as_error("store", [&]() -> Result<std::unique_ptr<SegmentStore>> {
        std::unique_ptr<SegmentStore> s(new SegmentStore(vm.manifest));
        s->read_only_ = true;
        s->data_path_ = file;
        s->data_fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (s->data_fd_ < 0) return err(sys_error("cannot open", file));
        struct stat st {};
        if (::fstat(s->data_fd_, &st) != 0) return err(sys_error("cannot stat", file));
        if (static_cast<std::uint64_t>(st.st_size) != vm.manifest.total_size)
            return err(file + " has " + std::to_string(st.st_size) + " bytes, the manifest says " +
                       std::to_string(vm.manifest.total_size));
        s->held_ = s->verify_pass(Bitfield(vm.manifest.segment_count(), true));
        if (s->held_.none()) return err(file + " matches no segment of the manifest");
        return s;
    });
}

Status SegmentStore::read(std::uint32_t i, Bytes& out) {
    if (!held_.test(i)) return err("segment " + std::to_string(i) + " is not held");
    if (!verify_at(i, out)) {
        forget(i);
        return err("segment " + std::to_string(i) + " on disk no longer matches the manifest; dropped");
    }
    return {};
}

Status SegmentStore::check_read(std::uint32_t i, Bytes& out) const {
    out.resize(manifest_.segment_length(i));
    if (auto st = pread_all(data_fd_, out.data(), out.size(), manifest_.segment_offset(i), data_path_); !st) return st;
    // The identity is checked after the read: a write racing it changes the identity.
    if (memo_.trusted(data_fd_, i)) return {};
    if (!hash_ok(i, out)) {
        memo_.distrust(i);
        return err("segment " + std::to_string(i) + " on disk no longer matches the manifest");
    }
    return {};
}

SegmentStore::WriteOutcome SegmentStore::check_write(std::uint32_t i, ByteView data, std::string& error) const {
    if (!hash_ok(i, data)) return WriteOutcome::BadHash;
    if (read_only_) {
        error = "store is read-only";
        return WriteOutcome::IoError;
    }
    if (auto st = pwrite_all(data_fd_, data.data(), data.size(), manifest_.segment_offset(i), data_path_); !st) {
        error = st.error();
        return WriteOutcome::IoError;
    }
    return WriteOutcome::Written;
}

Status SegmentStore::write(std::uint32_t i, ByteView data) {
    if (read_only_) return err("store is read-only");
    if (i >= held_.size() || data.size() != manifest_.segment_length(i))
        return err("segment " + std::to_string(i) + " has the wrong length");
    if (held_.test(i)) return {};
    if (auto st = pwrite_all(data_fd_, data.data(), data.size(), manifest_.segment_offset(i), data_path_); !st) return st;
    held_.set(i);
    return {};
}

Status SegmentStore::sync() {
    if (read_only_ || held_.count() == durable_.count()) return {};
    Bitfield snapshot = held_;
    if (auto st = sync_snapshot(snapshot.to_bytes()); !st) return st;
    set_durable(snapshot);
    return {};
}

Status SegmentStore::sync_snapshot(const Bytes& have) const {
    if (read_only_) return {};
    auto snapshot = Bitfield::from_bytes(have, manifest_.segment_count());
    if (!snapshot) return err("have snapshot of " + have_path_ + " has the wrong size");
    std::lock_guard lock(sync_mu_);
    auto st = catch_as_error("store sync", [&] { return sync_data_locked(*snapshot); });
    if (!st) sync_failed_ = true;  // whatever failed, the next sync checks and rewrites
    return st;
}

// Caller holds sync_mu_. Makes the segments of `snapshot` durable and writes
// the have file; drops from `snapshot` (and records in lost_) any segment a
// retry after a failed sync finds damaged.
Status SegmentStore::sync_data_locked(Bitfield& snapshot) const {
    if (sync_failed_) {
        // The failed sync may have dropped these writes while the kernel now
        // calls the pages clean: read each back, check it, and write it again.
        Bytes buf;
        for (std::uint32_t i = 0; i < snapshot.size(); ++i) {
            if (!snapshot.test(i) || on_disk_.test(i)) continue;
            if (!verify_at(i, buf)) {
                snapshot.reset(i);
                if (std::find(lost_.begin(), lost_.end(), i) == lost_.end()) lost_.push_back(i);
                continue;
            }
            if (auto st = pwrite_all(data_fd_, buf.data(), buf.size(), manifest_.segment_offset(i), data_path_); !st)
                return st;
        }
    }
    bool lose = false;
    if (sync_fd(data_fd_, true, &lose) != 0) {
        const int e = errno;
        sync_failed_ = true;
        if (lose) {  // fault injection: the writes since the last good sync are gone
            for (std::uint32_t i = 0; i < snapshot.size(); ++i) {
                if (!snapshot.test(i) || on_disk_.test(i)) continue;
                Bytes zeros(manifest_.segment_length(i), 0);
                (void)pwrite_all(data_fd_, zeros.data(), zeros.size(), manifest_.segment_offset(i), data_path_);
            }
        }
        errno = e;
        return err(sys_error("cannot sync", data_path_) + "; nothing marked durable, retried on the next sync");
    }
    Bytes have = snapshot.to_bytes();
    Status st = pwrite_all(have_fd_, have.data(), have.size(), 0, have_path_);
    if (st && sync_fd(have_fd_, true) != 0) st = err(sys_error("cannot sync", have_path_));
    if (!st) {
        sync_failed_ = true;
        return st;
    }
    on_disk_ = snapshot;
    sync_failed_ = false;
    return {};
}

void SegmentStore::set_durable(const Bitfield& snapshot) {
    std::vector<std::uint32_t> lost;
    {
        std::lock_guard lock(sync_mu_);
        lost.swap(lost_);
    }
    for (auto i : lost) {  // damaged by a failed sync: not held any more, fetched again
        held_.reset(i);
        durable_.reset(i);
    }
    for (std::uint32_t i = 0; i < snapshot.size(); ++i)
        if (snapshot.test(i) && held_.test(i)) durable_.set(i);
}

void SegmentStore::forget(std::uint32_t i) {
    memo_.distrust(i);
    held_.reset(i);
    bool was_durable = durable_.test(i);
    durable_.reset(i);
    if (read_only_ || !was_durable) return;
    std::lock_guard lock(sync_mu_);
    on_disk_.reset(i);
    (void)save_have();
}

Status SegmentStore::save_have() {
    Bytes b = durable_.to_bytes();
    if (auto st = pwrite_all(have_fd_, b.data(), b.size(), 0, have_path_); !st) return st;
    if (sync_fd(have_fd_, true) != 0) return err(sys_error("cannot sync", have_path_));
    return {};
}

Status SegmentStore::export_to(const std::string& path) const {
    if (!held_.all()) return err("patch is not complete");
    if (!read_only_ && !durable_.all()) return err("patch is not synced to disk");
    std::string tmp = path + ".part";
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return err(sys_error("cannot create", tmp));
    Status st = catch_as_error("export", [&]() -> Status {
        // Every segment is checked on the way: that is a full pass, which lets
        // serving skip the hashes afterwards.
        auto start = VerifyMemo::begin_pass(data_fd_);
        Bytes buf;
        for (std::uint32_t i = 0; i < manifest_.segment_count(); ++i) {
            if (!verify_at(i, buf))
                return err("segment " + std::to_string(i) + " of " + data_path_ +
                           " cannot be read or no longer matches the manifest; not exported");
            if (auto w = pwrite_all(out, buf.data(), buf.size(), manifest_.segment_offset(i), tmp); !w) return w;
        }
        memo_.end_pass(data_fd_, start, held_);
        return {};
    });
    if (st && sync_fd(out, false) != 0) st = err(sys_error("cannot sync", tmp));
    ::close(out);
    if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = err(sys_error("cannot rename to", path));
    if (!st) {
        ::unlink(tmp.c_str());
        return st;
    }
    return sync_folder_of(path);
}

}  // namespace ps::node
