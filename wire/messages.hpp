// The transfer protocol spoken inside an encrypted stream, and the plaintext
// handshake that opens it. See docs/protocol.md.
//
// Every message is one msgpack array [type, fields...] carried in one
// secretstream frame of at most kMaxFrame plaintext bytes. Decoding is strict:
// exact field counts and types, hard limits, no trailing bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/types.hpp"
#include "crypto/crypto.hpp"
#include "wire/cert.hpp"

namespace ps::wire {

inline constexpr std::uint16_t kProtocolVersion = 1;
// Segment bytes per Data message. Segments travel as several chunks so that a
// frame stays small (bounded receive buffer, fine-grained back-pressure).
inline constexpr std::size_t kMaxChunk = 256 * 1024;
// Largest plaintext frame: a full chunk plus its header, or a bitfield of
// 1,048,576 segments (64 GiB at 64 KiB segments) plus its header.
inline constexpr std::size_t kMaxFrame = kMaxChunk + 1024;
// Largest ciphertext frame on the wire.
inline constexpr std::size_t kMaxWireFrame = kMaxFrame + crypto::kStreamOverhead;

enum class MsgType : std::uint8_t {
    Have = 1, HaveOne = 2, Request = 3, Data = 4, Reject = 5, Cancel = 6, Keepalive = 7, Bye = 8,
    Announce = 9, Peers = 10, Assign = 11, Statement = 12
};

// Contacts a Peers message may carry: enough to rebuild a partial view.
inline constexpr std::size_t kMaxContacts = 32;

struct MsgHave {  // "I hold these segments of this patch" (sent on connect)
    Hash32 manifest{};
    Bytes bitfield;
};
struct MsgHaveOne {  // "I now hold this segment too"
    Hash32 manifest{};
    std::uint32_t segment = 0;
};
struct MsgRequest {
    Hash32 manifest{};
    std::uint32_t segment = 0;
};
struct MsgData {  // a chunk of a requested segment; `data` points into the frame
    Hash32 manifest{};
    std::uint32_t segment = 0;
    std::uint32_t offset = 0;
    ByteView data;
};
struct MsgReject {
    Hash32 manifest{};
    std::uint32_t segment = 0;
    std::uint8_t reason = 0;  // core::RejectReason
};
struct MsgCancel {
    Hash32 manifest{};
    std::uint32_t segment = 0;
};
struct MsgKeepalive {};
struct MsgBye {
    std::string reason;
};
// A super-node to a device of its domain: the segments of the patch the
// device fetches from other domains or the origin for the domain (a bitfield
// in the form of MsgHave's).
struct MsgAssign {
    Hash32 manifest{};
    Bytes share;
};
// Gossip: a signed manifest (the receiver verifies it against its trust store
// before it believes or forwards it); `manifest` points into the frame.
struct MsgAnnounce {
    ByteView manifest;
};
// Gossip: a signed operator statement (wire/statement.hpp); the receiver
// checks it under its trust store before it acts on or forwards it.
struct MsgStatement {
    ByteView statement;
};
// A node the sender knows, as the receiver would dial it (unauthenticated:
// the handshake proves the key when someone dials).
struct Contact {
    crypto::PublicKey key{};
    std::string host;
    std::uint16_t port = 0;
    Role role = Role::Peer;
    std::string domain;
    bool operator==(const Contact&) const = default;
};
struct MsgPeers {
    std::vector<Contact> contacts;  // the sender itself first
};

using Message = std::variant<MsgHave, MsgHaveOne, MsgRequest, MsgData, MsgReject, MsgCancel, MsgKeepalive, MsgBye,
                             MsgAnnounce, MsgPeers, MsgAssign, MsgStatement>;

// Appends the encoding of `m` to `out`.
void encode_message(const Message& m, Bytes& out);
// Decodes one frame. ByteViews in the result point into `frame`.
Result<Message> decode_message(ByteView frame);

// ---- handshake (plaintext, fixed size) ----
// Hello: "PSWM" | version u16 BE | flags u16 | ephemeral X25519 key (32).
inline constexpr std::size_t kHelloSize = 40;
struct Hello {
    std::uint16_t version = kProtocolVersion;
    std::array<std::uint8_t, 32> ephemeral{};
};
std::array<std::uint8_t, kHelloSize> encode_hello(const Hello& h);
Result<Hello> decode_hello(ByteView b);

// Auth: the first encrypted frame from each side. It proves the sender holds the
// node key it names, for this very handshake (the transcript hash covers both
// fresh ephemerals), and says what the node is (role, domain).
struct Auth {
    crypto::PublicKey node_key{};
    Role role = Role::Peer;
    std::string domain;
    crypto::Signature sig{};
    // The node's encoded certificate (wire/cert.hpp), empty without one. Not
    // covered by sig: it binds itself to node_key with the operator's
    // signature, which the receiving node checks against its trust store.
    Bytes cert{};
};
// What Auth.sig signs: a tag, the transcript hash, which side speaks, role, domain.
Bytes auth_payload(const Hash32& transcript, bool from_dialer, Role role, const std::string& domain);
Bytes encode_auth(const Auth& a);
Result<Auth> decode_auth(ByteView b);

}  // namespace ps::wire
