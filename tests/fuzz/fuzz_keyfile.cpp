// Fuzz target: operator key files (node/keys.hpp), public and secret, read
// from disk. Invariants: no crash or sanitizer report; an accepted public key
// file is exactly format_public_key of its key (one key, one text); the same
// bytes are never accepted as both kinds.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/crypto.hpp"
#include "node/keys.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool ready = ps::crypto::init().ok();
    if (!ready) std::abort();
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto pk = ps::node::parse_public_key(text, "fuzz");
    if (pk && ps::node::format_public_key(*pk) != text) std::abort();
    auto sk = ps::node::parse_secret_key(text, "fuzz");
    if (pk && sk) std::abort();
    if (!pk && pk.error().rfind("fuzz: ", 0) != 0) std::abort();
    if (!sk && sk.error().rfind("fuzz: ", 0) != 0) std::abort();
    return 0;
}
