// Fuzz target: the gate in front of OpenDHT's decoder (dht/datagram.hpp),
// which sees every UDP datagram from anyone. Invariants: no crash or
// sanitizer report; whatever it lets through, msgpack-c decodes within limits
// no larger than the datagram itself (so no header can make it reserve more
// than a few times the datagram's size).
#include <msgpack.hpp>

#include <cstdint>
#include <cstdlib>

#include "dht/datagram.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto v = ps::dht::check_datagram_shape(ps::ByteView(data, size));
    if (v != ps::dht::DatagramVerdict::Ok) return 0;
    if (size > ps::dht::kMaxDatagramBytes) std::abort();
    const msgpack::unpack_limit limits(size, size, size, size, size, ps::dht::kMaxDatagramDepth + 1);
    try {
        std::size_t off = 0;
        auto oh = msgpack::unpack(reinterpret_cast<const char*>(data), size, off, nullptr, nullptr, limits);
        (void)oh;
    } catch (const msgpack::size_overflow&) {
        std::abort();  // the gate let through a container larger than the datagram, or nesting deeper than its limit
    } catch (const std::exception&) {
        // Other malformations (an ext type msgpack-c does not take, say) are its own to refuse.
    }
    return 0;
}
