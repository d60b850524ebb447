// Fuzz target: the transfer protocol's frame decoder and the handshake decoders,
// which see bytes from any peer on the network.
#include <cstddef>
#include <cstdint>

#include "wire/messages.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ps::ByteView in(data, size);
    auto m = ps::wire::decode_message(in);
    if (m) {
        // Whatever decodes must re-encode and decode to the same type.
        ps::Bytes again;
        ps::wire::encode_message(*m, again);
        auto m2 = ps::wire::decode_message(again);
        if (!m2 || m2->index() != m->index()) __builtin_trap();
    }
    (void)ps::wire::decode_auth(in);
    (void)ps::wire::decode_hello(in);
    return 0;
}
