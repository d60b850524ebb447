// What a segment store remembers about its own verification, so that serving a
// segment does not hash it again (docs/architecture.md, "Verification paid
// once").
//
// A full pass (every held segment read and checked against the manifest)
// leaves a set of segments that matched, together with the identity of the
// data file as fstat() reports it: device, inode, size, mtime and ctime. The
// set is trusted only while the identity is unchanged. Any write through the
// file system (ours included) moves ctime, which no unprivileged process can
// set back, so a changed identity sends every read back to hashing until the
// next clean pass.
//
// A pass counts only if it began once the kernel's timestamp clock
// (CLOCK_REALTIME_COARSE, the clock ctime is stamped with) had moved past the
// ctime it saw: a write in that same tick would otherwise leave the identity
// unchanged. Bytes read for serving count as verified only if the identity
// after the read equals the trusted one, so a write racing the read is seen.
//
// Thread-safe: passes run on worker threads, reads on libuv's thread pool.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>

#include "core/bitfield.hpp"

namespace ps::node {

struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
    bool operator==(const FileIdentity&) const = default;
};

// fstat(fd) as an identity; nullopt when fstat fails.
std::optional<FileIdentity> identity_of(int fd);

class VerifyMemo {
public:
    explicit VerifyMemo(std::uint32_t segments) : trusted_(segments) {}

    // A pass over `fd` starts now: the identity it must still find at its
    // end, or nullopt when the file changed within the current clock tick (the
    // pass may still check segments, but cannot make them trusted).
    static std::optional<FileIdentity> begin_pass(int fd);
    // The pass that began at `start` found the segments of `ok` matching. They
    // become the trusted set if the file's identity is still `start`;
    // otherwise nothing is trusted. Returns whether they did.
    bool end_pass(int fd, const std::optional<FileIdentity>& start, const Bitfield& ok);

    // Whether segment i's bytes, just read from `fd`, are known to match
    // without hashing: i is trusted and the identity is still the trusted one.
    bool trusted(int fd, std::uint32_t i) const;
    // Segment i no longer matched: never trusted again until a pass says so.
    void distrust(std::uint32_t i);
    std::uint32_t trusted_count() const;

private:
    mutable std::mutex mu_;
    std::optional<FileIdentity> identity_;  // of the last clean pass
    Bitfield trusted_;
};

}  // namespace ps::node
