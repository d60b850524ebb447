#include "node/verify_memo.hpp"

#include <sys/stat.h>
#include <time.h>

namespace ps::node {

namespace {

std::int64_t ns_of(const struct timespec& t) { return std::int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec; }

}  // namespace

std::optional<FileIdentity> identity_of(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return std::nullopt;
    return FileIdentity{st.st_dev, st.st_ino, std::int64_t(st.st_size), ns_of(st.st_mtim), ns_of(st.st_ctim)};
}

std::optional<FileIdentity> VerifyMemo::begin_pass(int fd) {
    auto id = identity_of(fd);
    if (!id) return std::nullopt;
    struct timespec now {};
    if (::clock_gettime(CLOCK_REALTIME_COARSE, &now) != 0) return std::nullopt;
    // Still in the tick of the last change: a write later in this tick would
    // carry the same ctime and go unnoticed.
    if (ns_of(now) <= id->ctime_ns || ns_of(now) <= id->mtime_ns) return std::nullopt;
    return id;
}

bool VerifyMemo::end_pass(int fd, const std::optional<FileIdentity>& start, const Bitfield& ok) {
    auto end = identity_of(fd);
    std::lock_guard lock(mu_);
    if (!start || !end || !(*start == *end) || ok.size() != trusted_.size()) {
        identity_.reset();
        return false;
    }
    identity_ = end;
    trusted_ = ok;
    return true;
}

bool VerifyMemo::trusted(int fd, std::uint32_t i) const {
    auto now = identity_of(fd);
    std::lock_guard lock(mu_);
    return now && identity_ && *now == *identity_ && i < trusted_.size() && trusted_.test(i);
}

void VerifyMemo::distrust(std::uint32_t i) {
    std::lock_guard lock(mu_);
    if (i < trusted_.size()) trusted_.reset(i);
}

std::uint32_t VerifyMemo::trusted_count() const {
    std::lock_guard lock(mu_);
    return identity_ ? trusted_.count() : 0;
}

}  // namespace ps::node
