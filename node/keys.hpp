// node/keys: operator key files on disk, plus the small file helpers the
// manifest commands share (bounded reads, crash-safe atomic writes).
//
// Key file formats (text, two lines, lowercase hex, trailing newline):
//   secret: "patchswarm-ed25519-secret-v1\n" + 64 hex digits of the Ed25519 seed + "\n"
//   public: "patchswarm-ed25519-public-v1\n" + 64 hex digits of the public key + "\n"
// Anything else is refused with a reason. Secrets are never printed or logged.
// Blocking file I/O: call from the CLI or a worker thread, never an event loop.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/crypto.hpp"

namespace ps::node {

inline constexpr const char* kSecretKeyHeader = "patchswarm-ed25519-secret-v1";
inline constexpr const char* kPublicKeyHeader = "patchswarm-ed25519-public-v1";

// Writes both files. The secret file is created with mode 0600 and the public
// one with 0644, both with O_EXCL: an existing file is never overwritten (then
// nothing is written). Both files and their folder are fsynced.
Status write_keypair(const std::string& secret_path, const std::string& public_path,
                     const crypto::KeyPair&);
// Refuses a file that is not a regular file, that group or others may read or
// write ("... has mode 0644; run chmod 600 ..."), or that is not in the format.
Result<crypto::SecretKey> load_secret_key(const std::string& path);
Result<crypto::PublicKey> load_public_key(const std::string& path);
// Parses the text of a secret key file (as load_secret_key does after its
// mode check); the caller wipes `text`.
Result<crypto::SecretKey> parse_secret_key(std::string_view text, const std::string& what);
// Parses the text of a public key file (as load_public_key does).
Result<crypto::PublicKey> parse_public_key(std::string_view text, const std::string& what);
std::string format_public_key(const crypto::PublicKey&);

// Reads a whole regular file, refusing one larger than max_bytes (checked
// before reading, and again while reading in case it grows).
Result<Bytes> read_file_limited(const std::string& path, std::size_t max_bytes);
// Writes data to a temporary file beside path, fsyncs it, renames it over
// path and fsyncs the folder: readers see the old or the new file, never a
// mix, even after a crash.
Status write_file_atomic(const std::string& path, ByteView data, mode_t mode = 0644);

}  // namespace ps::node
