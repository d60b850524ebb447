// Private to wire/: bounded msgpack decoding of untrusted bytes.
// Every decoder of outside bytes goes through unpack_bounded() so that a hostile
// header cannot make msgpack reserve gigabytes (msgpack-c sizes an array or map
// from its header before reading any element).
#pragma once

#include <msgpack.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace ps::wire::detail {

struct UnpackLimits {
    std::size_t array = 64;
    std::size_t map = 64;
    std::size_t str = 4096;
    std::size_t bin = 2 * 1024 * 1024;
    std::size_t ext = 0;
    std::size_t depth = 4;
};

// Unpacks exactly one msgpack object spanning all of `data`; trailing bytes are an error.
// BIN payloads are referenced, not copied: the handle is only valid while `data` lives.
inline Result<msgpack::object_handle> unpack_bounded(ByteView data, const UnpackLimits& lim,
                                                     const char* what) {
    try {
        std::size_t off = 0;
        msgpack::unpack_limit limit(lim.array, lim.map, lim.str, lim.bin, lim.ext, lim.depth);
        auto ref = [](msgpack::type::object_type t, std::size_t, void*) {
            return t == msgpack::type::BIN;
        };
        auto oh = msgpack::unpack(reinterpret_cast<const char*>(data.data()), data.size(), off, ref,
                                  nullptr, limit);
        if (off != data.size()) return err(std::string(what) + ": trailing bytes after the message");
        return oh;
    } catch (const msgpack::insufficient_bytes&) {
        return err(std::string(what) + ": truncated");
    } catch (const msgpack::depth_size_overflow&) {
        return err(std::string(what) + ": nested too deep");
    } catch (const msgpack::size_overflow& e) {
        return err(std::string(what) + ": field over its size limit (" + e.what() + ")");
    } catch (const std::exception& e) {
        return err(std::string(what) + ": not valid msgpack (" + e.what() + ")");
    }
}

// Encoding helpers of the signed, canonical [body: bin, signature: bin] formats
// (certificates, statements): msgpack-c picks the smallest encoding of each
// integer and length, which with a fixed field order makes them canonical.
struct ByteSink {
    Bytes& out;
    void write(const char* p, std::size_t n) { out.insert(out.end(), p, p + n); }
};
using BytePacker = msgpack::packer<ByteSink>;

inline void pack_bin(BytePacker& pk, ByteView b) {
    pk.pack_bin(static_cast<std::uint32_t>(b.size()));
    pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
}

// [body, signature] as two bins.
template <std::size_t N>
Bytes encode_signed_pair(ByteView body, const std::array<std::uint8_t, N>& sig) {
    Bytes out;
    ByteSink sink{out};
    BytePacker pk(sink);
    pk.pack_array(2);
    pack_bin(pk, body);
    pack_bin(pk, sig);
    return out;
}

// What is signed: a domain-separation tag, then the body.
inline Bytes tagged(std::string_view tag, ByteView body) {
    Bytes msg(tag.begin(), tag.end());
    msg.insert(msg.end(), body.begin(), body.end());
    return msg;
}

// A bin of exactly N bytes into out; false for anything else.
template <std::size_t N>
bool get_fixed_bin(const msgpack::object& o, std::array<std::uint8_t, N>& out) {
    if (o.type != msgpack::type::BIN || o.via.bin.size != N) return false;
    std::memcpy(out.data(), o.via.bin.ptr, N);
    return true;
}

}  // namespace ps::wire::detail
