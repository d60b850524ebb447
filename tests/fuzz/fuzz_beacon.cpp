// Fuzz target: the LAN discovery beacon (wire/beacon.hpp), which any host on
// the LAN can send. Invariants: no crash or sanitizer report; a beacon that
// decodes is exactly kBeaconBytes, names a DHT port, and encodes back to the
// same fields.
#include <cstdint>
#include <cstdlib>

#include "wire/beacon.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto b = ps::wire::decode_beacon(ps::ByteView(data, size));
    if (!b) return 0;
    if (size != ps::wire::kBeaconBytes || b->dht_port == 0) std::abort();
    auto again = ps::wire::decode_beacon(ps::wire::encode_beacon(*b));
    if (!again || again->dht_port != b->dht_port || again->network_id != b->network_id || again->sender != b->sender)
        std::abort();
    return 0;
}
