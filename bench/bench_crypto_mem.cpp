// bench_crypto_mem: the transfer path's crypto done in memory by one core, the
// ceiling the socket benchmark is compared with: for each 1 MiB segment,
// secretstream push and pull in 256 KiB messages (as on the wire) and BLAKE2b-256.
//
//   bench_crypto_mem [MIB]   (default 1024)   prints MB/s (1 MB = 10^6 B)
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "crypto/crypto.hpp"
#include "wire/messages.hpp"

using namespace ps;

int main(int argc, char** argv) {
    if (!crypto::init()) return 1;
    std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
    constexpr std::size_t seg = 1 << 20;
    Bytes plain(seg), cipher(wire::kMaxChunk + crypto::kStreamOverhead), back(seg);
    crypto::random_bytes(plain.data(), plain.size());
    std::array<std::uint8_t, 32> key{};
    crypto::random_bytes(key.data(), key.size());
    crypto::StreamPush push;
    crypto::StreamPull pull;
    auto header = push.init(key);
    if (!pull.init(key, header)) return 1;
    std::uint8_t sink = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t s = 0; s < mib; ++s) {
        for (std::size_t off = 0; off < seg; off += wire::kMaxChunk) {
            ByteView chunk = ByteView(plain).subspan(off, wire::kMaxChunk);
            push.push(chunk, cipher.data());
            bool final = false;
            if (!pull.pull(ByteView(cipher).first(chunk.size() + crypto::kStreamOverhead), back.data() + off, &final))
                return 1;
        }
        sink ^= crypto::blake2b(back)[0];
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%.1f\n", double(mib * seg) / secs / 1e6);
    return sink == 0xff ? 0 : 0;
}
