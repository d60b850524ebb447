// Private to wire/: bounded msgpack decoding of untrusted bytes.
// Every decoder of outside bytes goes through unpack_bounded() so that a hostile
// header cannot make msgpack reserve gigabytes (msgpack-c sizes an array or map
// from its header before reading any element).
#pragma once

#include <msgpack.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
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

// Shared by the signed, canonical [body: bin, signature: bin] formats (holder
// records, domain summaries, certificates, statements): msgpack-c picks the
// smallest encoding of each integer and length, which with a fixed field order
// makes them canonical; field readers that check type and range.
using Packer = msgpack::packer<msgpack::sbuffer>;

// msgpack "buffer" that appends to a Bytes.
struct ByteSink {
    Bytes& out;
    void write(const char* p, std::size_t n) { out.insert(out.end(), p, p + n); }
};
using BytePacker = msgpack::packer<ByteSink>;

template <class Pk>
void pack_bin(Pk& pk, ByteView b) {
    pk.pack_bin(static_cast<std::uint32_t>(b.size()));
    pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
}

inline Bytes to_bytes(const msgpack::sbuffer& buf) {
    auto p = reinterpret_cast<const std::uint8_t*>(buf.data());
    return Bytes(p, p + buf.size());
}

// The outer encoding of a signed value: [bin body, bin signature].
inline Bytes encode_signed_pair(ByteView body, ByteView sig) {
    Bytes out;
    ByteSink sink{out};
    BytePacker pk(sink);
    pk.pack_array(2);
    pack_bin(pk, body);
    pack_bin(pk, sig);
    return out;
}

// What is signed: a domain-separation tag (with its NUL where the format has
// one) followed by the body.
inline Bytes tagged_message(std::string_view tag, ByteView body) {
    Bytes msg(tag.begin(), tag.end());
    msg.insert(msg.end(), body.begin(), body.end());
    return msg;
}

inline std::optional<std::uint64_t> get_uint(const msgpack::object& o, std::uint64_t max) {
    if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > max) return std::nullopt;
    return o.via.u64;
}

inline std::optional<std::int64_t> get_int(const msgpack::object& o) {
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
    if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= INT64_MAX)
        return static_cast<std::int64_t>(o.via.u64);
    return std::nullopt;
}

inline std::optional<std::string> get_str(const msgpack::object& o, std::size_t max) {
    if (o.type != msgpack::type::STR || o.via.str.size > max) return std::nullopt;
    return std::string(o.via.str.ptr, o.via.str.size);
}

// A bin of exactly N bytes into out; false for anything else.
template <std::size_t N>
bool get_bin(const msgpack::object& o, std::array<std::uint8_t, N>& out) {
    if (o.type != msgpack::type::BIN || o.via.bin.size != N) return false;
    std::memcpy(out.data(), o.via.bin.ptr, N);
    return true;
}

inline std::optional<ByteView> get_bin_view(const msgpack::object& o) {
    if (o.type != msgpack::type::BIN) return std::nullopt;
    return ByteView(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), o.via.bin.size);
}

}  // namespace ps::wire::detail
