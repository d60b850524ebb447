// Shared helpers for tests: temp folders, generated patches, in-process publish,
// and running a libuv loop until a condition holds or a deadline passes.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>

#include "core/bytes.hpp"
#include "crypto/crypto.hpp"
#include "node/trust.hpp"
#include "transfer/loop.hpp"
#include "wire/manifest.hpp"

namespace ps::test {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed with everything in it.
struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& tag = "ps-test") {
        static std::atomic<int> counter{0};
        std::random_device rd;
        path = fs::temp_directory_path() /
               (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Writes `size` pseudo-random bytes (deterministic for a seed).
inline void write_random_file(const std::string& path, std::size_t size, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string data(size, '\0');
    for (std::size_t i = 0; i < size; i += 8) {
        std::uint64_t v = rng();
        for (std::size_t k = 0; k < 8 && i + k < size; ++k) data[i + k] = static_cast<char>(v >> (8 * k));
    }
    std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Publishes `file` in-process, as `patchswarm publish` does, and returns the
// verified manifest under a trust store of that one key.
inline node::VerifiedManifest publish(const std::string& file, const crypto::KeyPair& op, const std::string& name = "patch",
                                      std::uint64_t version = 1) {
    auto d = node::digest_file(file, wire::kDefaultSegmentSize);
    REQUIRE(d);
    wire::Manifest m;
    m.name = name;
    m.version = version;
    m.label = "test";
    m.created = static_cast<std::int64_t>(std::time(nullptr));
    m.expires = m.created + 86400;
    m.total_size = d->total_size;
    m.segment_hashes = d->segment_hashes;
    m.file_hash = d->file_hash;
    m.key_id = wire::key_id_of(op.pk);
    wire::sign_manifest(m, op.sk);
    auto vm = node::verify_manifest_bytes(wire::encode_manifest(m), node::TrustStore::from_key(op.pk), m.created);
    REQUIRE(vm);
    return *vm;
}

// Runs the loop until done() is true or timeout_ms passed; returns done().
inline bool run_until(transfer::Loop& loop, std::function<bool()> done, std::uint64_t timeout_ms) {
    transfer::Timer t(loop);
    auto start = loop.now_ms();
    t.start(20, 20, [&] {
        if (done() || loop.now_ms() - start >= timeout_ms) loop.stop();
    });
    loop.run();
    return done();
}

}  // namespace ps::test
