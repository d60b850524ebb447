// Private to wire/: bounded msgpack decoding of untrusted bytes.
// Every decoder of outside bytes goes through unpack_bounded() so that a hostile
// header cannot make msgpack reserve gigabytes (msgpack-c sizes an array or map
// from its header before reading any element).
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <string>

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

}  // namespace ps::wire::detail
