#include "wire/beacon.hpp"

namespace ps::wire {

namespace {

constexpr std::uint8_t kMagic[4] = {'P', 'S', 'L', 'D'};

void put_be(Bytes& out, std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_be(ByteView in, std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | in[at + i];
    return v;
}

}  // namespace

Bytes encode_beacon(const Beacon& b) {
    Bytes out(kMagic, kMagic + 4);
    out.reserve(kBeaconBytes);
    out.push_back(kBeaconVersion);
    out.push_back(0);  // flags
    put_be(out, b.dht_port, 2);
    put_be(out, b.network_id, 4);
    put_be(out, 0, 4);  // reserved
    put_be(out, b.sender, 8);
    return out;
}

Result<Beacon> decode_beacon(ByteView data) {
    if (data.size() != kBeaconBytes)
        return err("beacon: " + std::to_string(data.size()) + " bytes, not " + std::to_string(kBeaconBytes));
    for (int i = 0; i < 4; ++i)
        if (data[i] != kMagic[i]) return err("beacon: not a patchswarm beacon (magic)");
    if (data[4] != kBeaconVersion) return err("beacon: version " + std::to_string(data[4]) + " not understood");
    Beacon b;
    b.dht_port = static_cast<std::uint16_t>(get_be(data, 6, 2));
    b.network_id = static_cast<std::uint32_t>(get_be(data, 8, 4));
    b.sender = get_be(data, 16, 8);
    if (b.dht_port == 0) return err("beacon: DHT port 0");
    return b;
}

}  // namespace ps::wire
