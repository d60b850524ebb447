// The transfer protocol's message codec: round trips and strict rejection.
#include <doctest/doctest.h>

#include "wire/messages.hpp"

using namespace ps;
using namespace ps::wire;

namespace {

Bytes enc(const Message& m) {
    Bytes b;
    encode_message(m, b);
    return b;
}

Hash32 mid(std::uint8_t v) {
    Hash32 h{};
    h.fill(v);
    return h;
}

}  // namespace

TEST_CASE("messages: every type round-trips") {
    Bytes chunk(1000, 7);
    Bytes manifest(300, 9);
    Contact c1{crypto::PublicKey{}, "127.0.0.1", 4000, Role::Super, "east"};
    c1.key.fill(3);
    std::vector<Message> all{MsgHave{mid(1), {0xff, 0x80}},
                             MsgHaveOne{mid(2), 17},
                             MsgRequest{mid(3), 4},
                             MsgData{mid(4), 5, 262144, chunk},
                             MsgReject{mid(5), 6, 1},
                             MsgCancel{mid(6), 7},
                             MsgKeepalive{},
                             MsgBye{"done"},
                             MsgAnnounce{manifest},
                             MsgPeers{{c1, c1}},
                             MsgAssign{mid(7), {0x41, 0x80}}};
    for (auto& m : all) {
        Bytes b = enc(m);
        auto d = decode_message(b);
        REQUIRE_MESSAGE(d, d.error());
        CHECK(d->index() == m.index());
        CHECK(enc(*d) == b);
    }
}

TEST_CASE("messages: malformed frames are rejected with a reason naming the problem") {
    auto req = enc(MsgRequest{mid(1), 3});
    SUBCASE("truncated") {
        req.pop_back();
        auto d = decode_message(req);
        REQUIRE_FALSE(d);
        CHECK(d.error() == "message: truncated");
    }
    SUBCASE("trailing bytes") {
        req.push_back(0);
        CHECK(decode_message(req).error() == "message: trailing bytes after the message");
    }
    SUBCASE("unknown type") {
        req[1] = 99;
        CHECK(decode_message(req).error() == "message: unknown type 99");
    }
    SUBCASE("assign without its share") {
        Bytes b;
        encode_message(MsgCancel{mid(1), 3}, b);
        b[1] = 11;  // an Assign's type with a Cancel's fields: a number where the share goes
        CHECK(decode_message(b).error() == "message: malformed assign");
    }
    SUBCASE("wrong field type") {
        auto b = enc(MsgHaveOne{mid(1), 3});
        b.back() = 0xc0;  // nil instead of the segment number
        CHECK(decode_message(b).error() == "message: malformed have-one");
    }
    SUBCASE("manifest id of the wrong size") {
        auto b = enc(MsgCancel{mid(1), 3});
        b[2] = 0xc4;
        b[3] = 31;  // bin8 of 31 bytes: the decoder sees a short id and stray bytes
        CHECK_FALSE(decode_message(b));
    }
    SUBCASE("data chunk over the limit") {
        Bytes big(kMaxChunk + 1, 1);
        CHECK(decode_message(enc(MsgData{mid(1), 0, 0, big})).error() == "message: malformed data");
    }
    SUBCASE("frame over the limit") {
        Bytes huge(kMaxFrame + 1, 0);
        CHECK(decode_message(huge).error().find("over the limit") != std::string::npos);
    }
    SUBCASE("peers with a bad domain") {
        Contact c{crypto::PublicKey{}, "127.0.0.1", 4000, Role::Peer, "Bad Domain"};
        CHECK(decode_message(enc(MsgPeers{{c}})).error() == "message: malformed peers entry");
    }
    SUBCASE("a hostile array header cannot make the decoder reserve memory") {
        Bytes b{0xdd, 0x10, 0x00, 0x00, 0x00};  // array32 claiming 2^28 elements
        CHECK_FALSE(decode_message(b));
    }
}

TEST_CASE("messages: handshake auth decodes strictly") {
    Auth a;
    a.node_key.fill(1);
    a.role = Role::Origin;
    a.domain = "core";
    a.sig.fill(2);
    auto b = encode_auth(a);
    auto d = decode_auth(b);
    REQUIRE(d);
    CHECK(d->domain == "core");
    CHECK(d->role == Role::Origin);
    b[b.size() - 70] = 0x07;  // role byte region: corrupt the structure
    auto bad = decode_auth(Bytes(b.begin(), b.begin() + 10));
    CHECK_FALSE(bad);
    CHECK(decode_hello(Bytes(39, 0)).error() == "handshake: hello has the wrong size");
}
