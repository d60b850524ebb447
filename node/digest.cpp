// digest_file (declared in node/trust.hpp): the segment hashes and the file
// hash of a patch in one streaming pass, on every core.
//
// The caller's thread only reads (1 MiB chunks, never across a segment
// boundary). Each chunk goes to the segment worker that owns the chunk's
// segment (segment k belongs to worker k mod W), which sees its segments'
// chunks in order. For a format-2 manifest the file hash is the root of the
// segment hashes (wire::segment_root), computed at the end from 32 bytes a
// segment: W = the cores, and publish runs at W BLAKE2b streams.
//
// A format-1 manifest's file hash is BLAKE2b of the whole file, which must see
// the bytes in order: then each chunk also goes to a whole-file hasher on a
// thread of its own, W = the cores less one, and a buffer is reused once both
// consumers are done with it. That runs at the speed of one BLAKE2b stream, the
// bound the sequential file hash sets (why format 2 exists), and still needs no
// second pass over the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "crypto/crypto.hpp"
#include "node/trust.hpp"
#include "wire/manifest.hpp"

namespace ps::node {

namespace {

constexpr std::size_t kReadChunk = 1u << 20;
constexpr std::size_t kNoSlot = SIZE_MAX;

struct FileCloser {
    int fd = -1;
    ~FileCloser() {
        if (fd >= 0) ::close(fd);
    }
};

// One read: `len` bytes in buffer `slot`, part of segment `segment`; `last`
// closes the segment (an end marker with no slot closes the file's last one).
struct Chunk {
    std::size_t slot = kNoSlot;
    std::size_t len = 0;
    std::uint64_t segment = 0;
    bool last = false;
};

class DigestPipeline {
public:
    DigestPipeline(unsigned workers, bool whole) : whole_(whole), seg_queues_(workers) {
        slots_.resize(2 * workers + 4);
        for (auto& b : slots_) b.resize(kReadChunk);
        refs_.assign(slots_.size(), 0);
        if (whole_) threads_.emplace_back([this] { run_whole(); });
        for (unsigned w = 0; w < workers; ++w) threads_.emplace_back([this, w] { run_segments(w); });
    }
    ~DigestPipeline() { stop(); }
    DigestPipeline(const DigestPipeline&) = delete;
    DigestPipeline& operator=(const DigestPipeline&) = delete;

    // A free buffer to read into.
    std::size_t acquire() {
        std::unique_lock lk(mu_);
        for (;;) {
            for (std::size_t i = 0; i < refs_.size(); ++i)
                if (refs_[i] == 0) {
                    refs_[i] = kReserved;
                    return i;
                }
            cv_.wait(lk);
        }
    }
    std::uint8_t* slot(std::size_t i) { return slots_[i].data(); }
    void release_unused(std::size_t i) {
        std::lock_guard lk(mu_);
        refs_[i] = 0;
        cv_.notify_all();
    }
    void submit(const Chunk& c) {
        std::lock_guard lk(mu_);
        if (c.slot != kNoSlot) {
            refs_[c.slot] = whole_ ? 2 : 1;
            if (whole_) whole_queue_.push_back(c);
        }
        seg_queues_[c.segment % seg_queues_.size()].push_back(c);
        cv_.notify_all();
    }
    // Waits for every consumer; the whole-file hash and the segment hashes.
    std::pair<Hash32, std::vector<Hash32>> finish() {
        stop();
        return {file_hash_, std::move(segment_hashes_)};
    }

private:
    static constexpr int kReserved = -1;
    void done_with(std::size_t slot) {  // caller holds mu_
        if (--refs_[slot] == 0) cv_.notify_all();
    }
    // Takes the next chunk of `q`, or false once stopped and drained.
    bool next(std::deque<Chunk>& q, Chunk& c, std::unique_lock<std::mutex>& lk) {
        cv_.wait(lk, [&] { return !q.empty() || stop_; });
        if (q.empty()) return false;
        c = q.front();
        q.pop_front();
        return true;
    }
    void run_whole() {
        crypto::Hasher h;
        std::unique_lock lk(mu_);
        Chunk c;
        while (next(whole_queue_, c, lk)) {
            lk.unlock();
            h.update(ByteView(slots_[c.slot].data(), c.len));
            lk.lock();
            done_with(c.slot);
        }
        file_hash_ = h.finish();
    }
    void run_segments(unsigned w) {
        std::optional<crypto::Hasher> h;
        std::unique_lock lk(mu_);
        Chunk c;
        while (next(seg_queues_[w], c, lk)) {
            lk.unlock();
            if (!h) h.emplace();
            if (c.len) h->update(ByteView(slots_[c.slot].data(), c.len));
            Hash32 out{};
            if (c.last) {
                out = h->finish();
                h.reset();
            }
            lk.lock();
            if (c.last) {
                if (segment_hashes_.size() <= c.segment) segment_hashes_.resize(c.segment + 1);
                segment_hashes_[c.segment] = out;
            }
            if (c.slot != kNoSlot) done_with(c.slot);
        }
    }
    void stop() {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
            cv_.notify_all();
        }
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }

    bool whole_;  // a whole-file hash too (format-1 manifests)
    std::vector<std::vector<std::uint8_t>> slots_;
    std::vector<int> refs_;  // consumers still reading a buffer; kReserved while the reader fills it
    std::deque<Chunk> whole_queue_;
    std::vector<std::deque<Chunk>> seg_queues_;
    Hash32 file_hash_{};
    std::vector<Hash32> segment_hashes_;
    bool stop_ = false;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::thread> threads_;  // last: started once everything above exists
};

// Every core hashes segments; with a whole-file hash, that one takes a core.
unsigned segment_workers(bool whole) {
    unsigned cores = std::clamp(std::thread::hardware_concurrency(), 1u, 16u);  // bounded: 2 MiB of buffers per worker
    return whole ? std::max(cores, 2u) - 1 : cores;
}

}  // namespace

Result<FileDigest> digest_file(const std::string& path, std::uint32_t segment_size, std::uint32_t format,
                               unsigned segment_threads) {
    const bool whole = format == wire::kManifestFormatWholeFile;
    if (segment_size < wire::kMinSegmentSize || segment_size > wire::kMaxSegmentSize)
        return err("segment size " + std::to_string(segment_size) + " is outside " +
                   std::to_string(wire::kMinSegmentSize) + ".." + std::to_string(wire::kMaxSegmentSize));
    FileCloser f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) return err("cannot open " + path + ": " + std::strerror(errno));
    struct stat st;
    if (::fstat(f.fd, &st) != 0) return err("cannot stat " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return err(path + " is not a regular file");
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > wire::kMaxTotalSize)
        return err(path + " is " + std::to_string(size) + " bytes, over the " + std::to_string(wire::kMaxTotalSize) +
                   "-byte limit");
    (void)::posix_fadvise(f.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    FileDigest d;
    DigestPipeline pipe(segment_threads ? segment_threads : segment_workers(whole), whole);
    std::uint64_t in_segment = 0, segment = 0;
    for (;;) {
        std::size_t slot = pipe.acquire();
        // Never read across a segment boundary, so each chunk feeds one segment.
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, segment_size - in_segment));
        ssize_t r;
        do {
            r = ::read(f.fd, pipe.slot(slot), want);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) pipe.release_unused(slot);
        if (r < 0) return err("cannot read " + path + ": " + std::strerror(errno));
        if (r == 0) break;
        d.total_size += static_cast<std::uint64_t>(r);
        in_segment += static_cast<std::uint64_t>(r);
        if (d.total_size > wire::kMaxTotalSize) return err(path + " grew past the size limit");
        bool last = in_segment == segment_size;
        pipe.submit(Chunk{slot, static_cast<std::size_t>(r), segment, last});
        if (last) {
            ++segment;
            in_segment = 0;
        }
    }
    if (in_segment > 0) pipe.submit(Chunk{kNoSlot, 0, segment, true});
    auto [file_hash, segments] = pipe.finish();
    d.segment_hashes = std::move(segments);
    if (d.total_size == 0) return err(path + " is empty");
    d.file_hash = whole ? file_hash : wire::segment_root(d.total_size, segment_size, d.segment_hashes);
    return d;
}

}  // namespace ps::node
