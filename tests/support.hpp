// Shared helpers for tests: temp folders, generated patches, in-process publish,
// and running a libuv loop until a condition holds or a deadline passes.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <vector>

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

inline void flip_byte(const std::string& path, std::uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x20);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
}

// Starts the patchswarm binary with args, stdout/stderr to files; returns its pid.
inline pid_t spawn_cli(std::vector<std::string> args, const std::string& out_path, const std::string& err_path) {
    args.insert(args.begin(), PS_CLI);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) ::_exit(127);
        ::dup2(o, 1);
        ::dup2(e, 2);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return pid;
}

struct Run {
    int code = -1;
    std::string out, err;
    long maxrss_kib = 0;  // peak resident set of the child
};

// Waits for a child; the exit code, or 128 + signal.
inline Run wait_cli(pid_t pid, const std::string& out_path, const std::string& err_path) {
    int status = 0;
    struct rusage ru {};
    REQUIRE(::wait4(pid, &status, 0, &ru) == pid);
    Run r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    r.maxrss_kib = ru.ru_maxrss;
    return r;
}

// Runs the patchswarm binary with args to completion; output files in dir.
inline Run run_cli(const TempDir& dir, std::vector<std::string> args) {
    std::string out_path = dir / ".stdout", err_path = dir / ".stderr";
    return wait_cli(spawn_cli(std::move(args), out_path, err_path), out_path, err_path);
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
    wire::Manifest fields;
    fields.name = name;
    fields.version = version;
    fields.label = "test";
    fields.created = static_cast<std::int64_t>(std::time(nullptr));
    fields.expires = fields.created + 86400;
    fields.key_id = wire::key_id_of(op.pk);
    auto made = node::manifest_for_file(file, fields);
    REQUIRE(made);
    wire::Manifest m = std::move(*made);
    wire::sign_manifest(m, op.sk);
    auto vm = node::verify_manifest_bytes(wire::encode_manifest(m), node::TrustStore::from_key(op.pk), m.created);
    REQUIRE(vm);
    return *vm;
}

// True when this machine can bind the IPv6 loopback (::1); tests that need it
// skip, saying so, where it cannot (a container without IPv6, say).
inline bool have_ipv6_loopback() {
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// Runs the loop until done() is true or timeout_ms passed; returns done().
inline bool run_until(transfer::Loop& loop, std::function<bool()> done, std::uint64_t timeout_ms) {
    return loop.run_until(done, timeout_ms);
}

}  // namespace ps::test
