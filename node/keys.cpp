#include "node/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace ps::node {

namespace {

// Key files are two short lines; anything much larger is not a key file.
constexpr std::size_t kMaxKeyFileBytes = 1024;

std::string sys_error(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// Closes an fd on scope exit.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

Status write_all(int fd, const std::uint8_t* p, std::size_t n, const std::string& path) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return err(sys_error("cannot write", path));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return {};
}

Status fsync_dir_of(const std::string& path) {
    auto dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.fd < 0) return err(sys_error("cannot open folder", dir.string()));
    if (::fsync(d.fd) != 0) return err(sys_error("cannot fsync folder", dir.string()));
    return {};
}

// Creates path exclusively with mode, writes text, fsyncs.
Status create_exclusive(const std::string& path, std::string_view text, mode_t mode) {
    Fd f(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
    if (f.fd < 0) {
        if (errno == EEXIST) return err(path + " already exists; refusing to overwrite it");
        return err(sys_error("cannot create", path));
    }
    // The umask may only have narrowed the mode; make it exact.
    if (::fchmod(f.fd, mode) != 0) return err(sys_error("cannot chmod", path));
    auto s = write_all(f.fd, reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), path);
    if (!s) return s;
    if (::fsync(f.fd) != 0) return err(sys_error("cannot fsync", path));
    return {};
}

// Splits "HEADER\nHEX\n" and checks the header; returns the hex part.
Result<std::string_view> split_key_text(std::string_view text, const char* header,
                                        const std::string& what) {
    std::string_view h(header);
    auto nl = text.find('\n');
    if (nl == std::string_view::npos || text.substr(0, nl) != h)
        return err(what + ": not a key file of this kind (first line must be '" + std::string(h) +
                   "')");
    auto rest = text.substr(nl + 1);
    if (rest.empty() || rest.back() != '\n')
        return err(what + ": truncated (the key line must end with a newline)");
    rest.remove_suffix(1);
    if (rest.find('\n') != std::string_view::npos) return err(what + ": extra lines after the key");
    return rest;
}

// Exactly 64 lowercase hex digits into 32 bytes; the buffer is wiped by caller.
bool parse_hex32(std::string_view hex, std::array<std::uint8_t, 32>& out) {
    if (hex.size() != 64) return false;
    for (char c : hex)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    auto b = from_hex(hex);
    if (!b || b->size() != 32) return false;
    std::memcpy(out.data(), b->data(), 32);
    crypto::wipe(b->data(), b->size());
    return true;
}

}  // namespace

std::string format_public_key(const crypto::PublicKey& pk) {
    return std::string(kPublicKeyHeader) + "\n" + to_hex(pk) + "\n";
}

Status write_keypair(const std::string& secret_path, const std::string& public_path,
                     const crypto::KeyPair& kp) {
    if (secret_path == public_path) return err("the secret and public key paths are the same file");
    // Check both before creating either, so a refusal leaves nothing behind.
    struct stat st;
    if (::lstat(secret_path.c_str(), &st) == 0)
        return err(secret_path + " already exists; refusing to overwrite it");
    if (::lstat(public_path.c_str(), &st) == 0)
        return err(public_path + " already exists; refusing to overwrite it");

    auto seed = kp.sk.seed();
    std::string text = std::string(kSecretKeyHeader) + "\n" + to_hex(seed) + "\n";
    crypto::wipe(seed.data(), seed.size());
    auto s = create_exclusive(secret_path, text, 0600);
    crypto::wipe(text.data(), text.size());
    if (!s) return s;
    if (auto p = create_exclusive(public_path, format_public_key(kp.pk), 0644); !p) {
        // O_EXCL failed (a race) or disk error: don't leave half a key pair.
        ::unlink(secret_path.c_str());
        return p;
    }
    if (auto d = fsync_dir_of(secret_path); !d) return d;
    return fsync_dir_of(public_path);
}

Result<crypto::SecretKey> load_secret_key(const std::string& path) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (f.fd < 0) return err(sys_error("cannot open secret key file", path));
    struct stat st;
    if (::fstat(f.fd, &st) != 0) return err(sys_error("cannot stat", path));
    if (!S_ISREG(st.st_mode)) return err("secret key file " + path + " is not a regular file");
    if (st.st_mode & 077) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return err("secret key file " + path + " is accessible by group or others (mode " + mode +
                   "); run chmod 600 " + path);
    }
    if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes))
        return err("secret key file " + path + " is too large to be a key file");
    std::string text(kMaxKeyFileBytes + 1, '\0');
    std::size_t n = 0;
    while (n < text.size()) {
        ssize_t r = ::read(f.fd, text.data() + n, text.size() - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            crypto::wipe(text.data(), text.size());
            return err(sys_error("cannot read", path));
        }
        if (r == 0) break;
        n += static_cast<std::size_t>(r);
    }
    auto out = parse_secret_key(std::string_view(text.data(), n), "secret key file " + path);
    crypto::wipe(text.data(), text.size());
    return out;
}

Result<crypto::SecretKey> parse_secret_key(std::string_view text, const std::string& what) {
    return catch_as_error("secret key file", [&]() -> Result<crypto::SecretKey> {
        if (text.size() > kMaxKeyFileBytes) return err(what + ": too large to be a key file");
        auto hex = split_key_text(text, kSecretKeyHeader, what);
        if (!hex) return std::move(hex).take_error();
        crypto::Seed seed;
        Result<crypto::SecretKey> out = err(what + ": the key line must be 64 lowercase hex digits");
        if (parse_hex32(*hex, seed)) out = crypto::SecretKey::from_seed(seed);
        crypto::wipe(seed.data(), seed.size());
        return out;
    });
}

Result<crypto::PublicKey> parse_public_key(std::string_view text, const std::string& what) {
    return catch_as_error("public key file", [&]() -> Result<crypto::PublicKey> {
        auto hex = split_key_text(text, kPublicKeyHeader, what);
        if (!hex) return std::move(hex).take_error();
        crypto::PublicKey pk;
        if (!parse_hex32(*hex, pk)) return err(what + ": the key line must be 64 lowercase hex digits");
        return pk;
    });
}

Result<crypto::PublicKey> load_public_key(const std::string& path) {
    auto data = read_file_limited(path, kMaxKeyFileBytes);
    if (!data) return std::move(data).take_error();
    return parse_public_key(
        std::string_view(reinterpret_cast<const char*>(data->data()), data->size()),
        "public key file " + path);
}

Result<Bytes> read_file_limited(const std::string& path, std::size_t max_bytes) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (f.fd < 0) return err(sys_error("cannot open", path));
    struct stat st;
    if (::fstat(f.fd, &st) != 0) return err(sys_error("cannot stat", path));
    if (!S_ISREG(st.st_mode)) return err(path + " is not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
        return err(path + " is " + std::to_string(st.st_size) + " bytes, over the limit of " +
                   std::to_string(max_bytes));
    Bytes out(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t n = 0;
    while (n < out.size()) {
        ssize_t r = ::read(f.fd, out.data() + n, out.size() - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return err(sys_error("cannot read", path));
        if (r == 0) break;
        n += static_cast<std::size_t>(r);
        if (n > max_bytes)
            return err(path + " grew past the limit of " + std::to_string(max_bytes) + " bytes");
        if (n == out.size()) out.resize(std::min(out.size() * 2, max_bytes + 1));
    }
    out.resize(n);
    return out;
}

Status write_file_atomic(const std::string& path, ByteView data, mode_t mode) {
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    {
        Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
        if (f.fd < 0) return err(sys_error("cannot create", tmp));
        auto s = write_all(f.fd, data.data(), data.size(), tmp);
        if (s && ::fsync(f.fd) != 0) s = err(sys_error("cannot fsync", tmp));
        if (!s) {
            ::unlink(tmp.c_str());
            return s;
        }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto e = err(sys_error("cannot rename " + tmp + " to", path));
        ::unlink(tmp.c_str());
        return e;
    }
    return fsync_dir_of(path);
}

}  // namespace ps::node
