#include "node/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace

SegmentStore::~SegmentStore() {
    if (data_fd_ >= 0) ::close(data_fd_);
    if (have_fd_ >= 0) ::close(have_fd_);
}

bool SegmentStore::verify_at(std::uint32_t i, Bytes& buf) const {
    buf.resize(manifest_.segment_length(i));
    if (!pread_all(data_fd_, buf.data(), buf.size(), manifest_.segment_offset(i), data_path_)) return false;
    return bool(wire::check_segment(manifest_, i, buf));
}

Result<std::unique_ptr<SegmentStore>> SegmentStore::open_download(const std::string& dir, const VerifiedManifest& vm) {
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
        if (marked) {
            Bytes buf;
            for (std::uint32_t i = 0; i < s->held_.size(); ++i)
                if (marked->test(i) && s->verify_at(i, buf)) s->held_.set(i);
        }
    }
    s->durable_ = s->held_;
    if (auto st = s->save_have(); !st) return std::move(st).take_error();
    return s;
}

Result<std::unique_ptr<SegmentStore>> SegmentStore::open_complete(const std::string& file, const VerifiedManifest& vm) {
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
    Bytes buf;
    for (std::uint32_t i = 0; i < s->held_.size(); ++i)
        if (s->verify_at(i, buf)) s->held_.set(i);
    if (s->held_.none()) return err(file + " matches no segment of the manifest");
    return s;
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
    if (!verify_at(i, out)) return err("segment " + std::to_string(i) + " on disk no longer matches the manifest");
    return {};
}

SegmentStore::WriteOutcome SegmentStore::check_write(std::uint32_t i, ByteView data, std::string& error) const {
    if (!wire::check_segment(manifest_, i, data)) return WriteOutcome::BadHash;
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
    if (::fdatasync(data_fd_) != 0) return err(sys_error("cannot sync", data_path_));
    durable_ = held_;
    return save_have();
}

Status SegmentStore::sync_snapshot(const Bytes& have) const {
    if (read_only_) return {};
    if (::fdatasync(data_fd_) != 0) return err(sys_error("cannot sync", data_path_));
    if (auto st = pwrite_all(have_fd_, have.data(), have.size(), 0, have_path_); !st) return st;
    if (::fdatasync(have_fd_) != 0) return err(sys_error("cannot sync", have_path_));
    return {};
}

void SegmentStore::set_durable(const Bitfield& snapshot) {
    for (std::uint32_t i = 0; i < snapshot.size(); ++i)
        if (snapshot.test(i) && held_.test(i)) durable_.set(i);
}

void SegmentStore::forget(std::uint32_t i) {
    held_.reset(i);
    bool was_durable = durable_.test(i);
    durable_.reset(i);
    if (!read_only_ && was_durable) (void)save_have();
}

Status SegmentStore::save_have() {
    Bytes b = durable_.to_bytes();
    if (auto st = pwrite_all(have_fd_, b.data(), b.size(), 0, have_path_); !st) return st;
    if (::fdatasync(have_fd_) != 0) return err(sys_error("cannot sync", have_path_));
    return {};
}

Status SegmentStore::export_to(const std::string& path) const {
    if (!held_.all()) return err("patch is not complete");
    if (!read_only_ && !durable_.all()) return err("patch is not synced to disk");
    std::string tmp = path + ".part";
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return err(sys_error("cannot create", tmp));
    Bytes buf(1 << 20);
    std::uint64_t off = 0;
    Status st;
    while (off < manifest_.total_size && st) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), manifest_.total_size - off));
        st = pread_all(data_fd_, buf.data(), n, off, data_path_);
        if (st) st = pwrite_all(out, buf.data(), n, off, tmp);
        off += n;
    }
    if (st && ::fsync(out) != 0) st = err(sys_error("cannot sync", tmp));
    ::close(out);
    if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = err(sys_error("cannot rename to", path));
    if (!st) ::unlink(tmp.c_str());
    return st;
}

}  // namespace ps::node
