#include <doctest/doctest.h>

// The WebSocket wire headers are not in the single mesh.hpp yet (no transport uses
// them), so the suite built against it, whose include path holds only mesh.hpp, has
// nothing to test here.
#if __has_include(<mesh/wire/websocket_frame.hpp>)

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>  // lets doctest print std::string_view values
#include <string>
#include <string_view>
#include <vector>

#include <mesh/detail/buffer_pool.hpp>
#include <mesh/wire/websocket_frame.hpp>
#include <mesh/wire/websocket_handshake.hpp>

using mesh::Payload;
using namespace mesh::wire::ws;
using Event = MessageDecoder::Event;

namespace {

using Bytes = std::vector<std::uint8_t>;
using Key = std::array<std::uint8_t, 4>;

constexpr Key key_a{0x37, 0xFA, 0x21, 0x3D};  // the key of RFC 6455's examples
constexpr Key key_b{0x01, 0x80, 0xFE, 0x7F};
constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

Bytes bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

Bytes pattern(std::size_t n, std::uint32_t seed) {
    Bytes out(n);
    for (auto& b : out) {
        seed = seed * 1103515245u + 12345u;
        b = static_cast<std::uint8_t>(seed >> 16);
    }
    return out;
}

Bytes operator+(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// A frame as a peer sends it; masked with `key` unless it is null.
Bytes frame(Opcode op, bool fin, const Bytes& payload, const Key* key) {
    Bytes out(max_header_size);
    const std::size_t n = encode_header(out.data(), op, fin, payload.size(), key ? key->data() : nullptr);
    REQUIRE(n != 0);
    out.resize(n);
    out.insert(out.end(), payload.begin(), payload.end());
    if (key) apply_mask(out.data() + n, payload.size(), *key, 0);
    return out;
}

// A frame from a client (masked) or a server (not).
Bytes from_client(Opcode op, bool fin, const Bytes& payload, const Key& key = key_a) {
    return frame(op, fin, payload, &key);
}
Bytes from_server(Opcode op, bool fin, const Bytes& payload) { return frame(op, fin, payload, nullptr); }

Bytes close_payload(std::uint16_t code, std::string_view reason) {
    return Bytes{static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)} + bytes(reason);
}

struct Seen {
    Event event;
    Bytes data;  // a message's or a ping's or pong's payload, a close's or error's reason
    std::uint16_t status;
};

bool operator==(const Seen& a, const Seen& b) { return a.event == b.event && a.data == b.data && a.status == b.status; }

// Feeds bytes to a decoder as a transport would, recording every event; stops at a
// close or an error.
struct Reader {
    MessageDecoder decoder;
    std::vector<Seen> seen;
    bool stopped = false;

    explicit Reader(Role role, std::size_t max = no_limit) : decoder(role, max) {}

    // Returns how many of the `n` bytes were used.
    std::size_t feed(const std::uint8_t* data, std::size_t n) {
        std::size_t used = 0;
        for (;;) {
            used += decoder.feed(data + used, n - used);
            const Event e = decoder.event();
            if (e == Event::none) {
                CHECK(used == n);  // it waits for more only once it has used everything
                return used;
            }
            if (e == Event::message) {
                const Payload m = decoder.take_message();
                seen.push_back({e, Bytes(m.begin(), m.end()), 0});
            } else if (e == Event::ping || e == Event::pong) {
                seen.push_back({e, bytes(decoder.control_payload()), 0});
                decoder.next();
            } else {
                seen.push_back({e, bytes(decoder.reason()), decoder.status()});
                stopped = true;
                return used;
            }
        }
    }
    std::size_t feed(const Bytes& b) { return feed(b.data(), b.size()); }
};

// The events `stream` gives fed in one piece, and checks every other way of cutting
// it (at each byte boundary into two, and byte by byte) gives the same.
std::vector<Seen> decode_every_way(Role role, const Bytes& stream, std::size_t max = no_limit) {
    Reader whole(role, max);
    const std::size_t used = whole.feed(stream);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        Reader r(role, max);
        std::size_t u = r.feed(stream.data(), cut);
        if (!r.stopped) u += r.feed(stream.data() + cut, stream.size() - cut);
        CHECK(u == used);
        CHECK(r.seen == whole.seen);
    }
    Reader bytewise(role, max);
    std::size_t u = 0;
    for (std::size_t i = 0; i < stream.size() && !bytewise.stopped; ++i) u += bytewise.feed(stream.data() + i, 1);
    CHECK(u == used);
    CHECK(bytewise.seen == whole.seen);
    return whole.seen;
}

// Feeds `stream` whole and returns the one event that stops the decoder.
Seen stop_of(Role role, const Bytes& stream, std::size_t max = no_limit) {
    Reader r(role, max);
    r.feed(stream);
    REQUIRE(r.stopped);
    // Stopped for good: nothing more is used, and the event stays.
    const std::uint8_t more[] = {0x82, 0x00};
    CHECK(r.decoder.feed(more, sizeof more) == 0);
    r.decoder.next();
    CHECK(r.decoder.event() == r.seen.back().event);
    CHECK(r.decoder.held_bytes() == 0);
    return r.seen.back();
}

void check_error(Role role, const Bytes& stream, std::uint16_t status, std::size_t max = no_limit) {
    const Seen s = stop_of(role, stream, max);
    CHECK(s.event == Event::error);
    CHECK(s.status == status);
    CHECK_FALSE(s.data.empty());  // a reason for the close frame
}

} // namespace

TEST_SUITE("websocket wire") {

TEST_CASE("websocket: the RFC 6455 example key gives its accept value") {
    // RFC 6455 1.3 (the value has "zz": some copies of it print "Zz").
    CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // RFC 6455 4.1: that key is the base64 of the 16 bytes of "the sample nonce".
    std::array<std::uint8_t, 16> nonce{};
    const std::string_view text = "the sample nonce";
    std::copy(text.begin(), text.end(), nonce.begin());
    CHECK(make_key(nonce) == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(accept_key("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");  // the pair Wikipedia shows
}

TEST_CASE("websocket: base64 round trips RFC 4648 vectors and refuses non-canonical text") {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& v : vectors) {
        CAPTURE(v.first);
        const Bytes in = bytes(v.first);
        CHECK(detail::base64_encode(in.data(), in.size()) == v.second);
        CHECK(detail::base64_decoded_size(v.second) == static_cast<long>(v.first.size()));
    }
    for (std::string_view bad : {"Zg=", "Zh==", "Zm9=", "Z===", "====", "Zg==Zm9v", "Zm9v!A==", "Zm=v", "Zm9v\n"}) {
        CAPTURE(bad);
        CHECK(detail::base64_decoded_size(bad) == -1);
    }
}

TEST_CASE("websocket: header encodings use the shortest length form, masked or not") {
    struct Case {
        std::uint64_t length;
        Bytes plain;  // unmasked header of a final binary frame
    };
    const Case cases[] = {
        {0, {0x82, 0x00}},
        {125, {0x82, 0x7D}},
        {126, {0x82, 0x7E, 0x00, 0x7E}},
        {65535, {0x82, 0x7E, 0xFF, 0xFF}},
        {65536, {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}},
        {0x7FFFFFFFFFFFFFFFull, {0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.length);
        std::uint8_t out[max_header_size];
        std::size_t n = encode_header(out, Opcode::binary, true, c.length, nullptr);
        CHECK(Bytes(out, out + n) == c.plain);

        Bytes masked = c.plain;
        masked[1] |= 0x80;
        masked.insert(masked.end(), key_b.begin(), key_b.end());
        n = encode_header(out, Opcode::binary, true, c.length, key_b.data());
        CHECK(Bytes(out, out + n) == masked);
    }
    std::uint8_t out[max_header_size];
    REQUIRE(encode_header(out, Opcode::continuation, false, 3, nullptr) == 2);
    CHECK(Bytes(out, out + 2) == Bytes{0x00, 0x03});
    REQUIRE(encode_header(out, Opcode::ping, true, 125, nullptr) == 2);
    CHECK(Bytes(out, out + 2) == Bytes{0x89, 0x7D});
    REQUIRE(encode_header(out, Opcode::close, true, 2, key_a.data()) == 6);
    CHECK(Bytes(out, out + 6) == Bytes{0x88, 0x82, 0x37, 0xFA, 0x21, 0x3D});
}

TEST_CASE("websocket: encode_header refuses frames no peer may accept") {
    std::uint8_t out[max_header_size] = {0xAA};
    CHECK(encode_header(out, Opcode::binary, true, 0x8000000000000000ull, nullptr) == 0);
    CHECK(encode_header(out, Opcode::ping, true, 126, nullptr) == 0);
    CHECK(encode_header(out, Opcode::close, false, 2, nullptr) == 0);
    CHECK(encode_header(out, Opcode::pong, false, 0, nullptr) == 0);
    CHECK(encode_header(out, static_cast<Opcode>(3), true, 0, nullptr) == 0);
    CHECK(encode_header(out, static_cast<Opcode>(11), true, 0, nullptr) == 0);
    CHECK(out[0] == 0xAA);  // nothing written
}

TEST_CASE("websocket: masking in pieces equals masking whole") {
    const Bytes data = pattern(1000, 7);
    // The reference, a byte at a time as RFC 6455 5.3 writes it.
    Bytes reference = data;
    for (std::size_t i = 0; i < reference.size(); ++i) reference[i] ^= key_b[i % 4];
    CHECK(reference != data);

    Bytes whole = data;
    apply_mask(whole.data(), whole.size(), key_b, 0);
    CHECK(whole == reference);

    for (std::size_t piece : {1, 2, 3, 5, 7, 8, 9, 13, 64, 333}) {
        CAPTURE(piece);
        Bytes pieces = data;
        for (std::size_t at = 0; at < pieces.size(); at += piece)
            apply_mask(pieces.data() + at, std::min(piece, pieces.size() - at), key_b, at);
        CHECK(pieces == reference);
        // Masking is its own inverse.
        for (std::size_t at = 0; at < pieces.size(); at += piece)
            apply_mask(pieces.data() + at, std::min(piece, pieces.size() - at), key_b, at);
        CHECK(pieces == data);
    }
    // At an odd address and offset, as a payload that starts after a header is masked.
    Bytes odd = data;
    apply_mask(odd.data() + 3, 500, key_b, 3);
    for (std::size_t i = 3; i < 503; ++i) CHECK((odd[i] ^ key_b[i % 4]) == data[i]);
    CHECK(odd[2] == data[2]);
    CHECK(odd[503] == data[503]);
}

TEST_CASE("websocket: the examples of RFC 6455 5.7 decode as they should") {
    // A masked "Hello" pong, as a client sends it.
    const Bytes pong{0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58};
    const auto pong_seen = decode_every_way(Role::server, pong);
    REQUIRE(pong_seen.size() == 1);
    CHECK(pong_seen[0].event == Event::pong);
    CHECK(pong_seen[0].data == bytes("Hello"));

    // An unmasked "Hello" ping, as a server sends it.
    const Bytes ping{0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F};
    const auto ping_seen = decode_every_way(Role::client, ping);
    REQUIRE(ping_seen.size() == 1);
    CHECK(ping_seen[0].event == Event::ping);
    CHECK(ping_seen[0].data == bytes("Hello"));

    // 256 bytes and 64 KiB binary messages, unmasked, with their 16- and 64-bit lengths.
    const Bytes b256 = pattern(256, 1), b64k = pattern(65536, 2);
    Reader r(Role::client);
    r.feed(Bytes{0x82, 0x7E, 0x01, 0x00} + b256 + Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00} + b64k);
    REQUIRE(r.seen.size() == 2);
    CHECK(r.seen[0] == Seen{Event::message, b256, 0});
    CHECK(r.seen[1] == Seen{Event::message, b64k, 0});

    // Text messages, masked or not, whole or fragmented, are refused as unsupported data.
    check_error(Role::server, {0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58}, 1003);
    check_error(Role::client, {0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F}, 1003);
    check_error(Role::client, {0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F}, 1003);
}

TEST_CASE("websocket: a masked client stream decodes the same split at every byte boundary") {
    const Bytes big = pattern(300, 3);  // a 16-bit length
    const Bytes part1 = pattern(10, 4), part2 = pattern(70, 5), part3 = pattern(5, 6);
    const Bytes stream = from_client(Opcode::binary, true, big, key_a) +
                         from_client(Opcode::ping, true, bytes("hi"), key_b) +
                         from_client(Opcode::binary, false, part1, key_b) +
                         from_client(Opcode::continuation, false, part2, key_a) +
                         from_client(Opcode::pong, true, {}, key_a) +
                         from_client(Opcode::continuation, true, part3, key_b) +
                         from_client(Opcode::binary, true, {}, key_a) +
                         from_client(Opcode::close, true, close_payload(1000, "bye"), key_b);
    const auto seen = decode_every_way(Role::server, stream + Bytes{0xDE, 0xAD});
    const std::vector<Seen> expected{
        {Event::message, big, 0},
        {Event::ping, bytes("hi"), 0},
        {Event::pong, {}, 0},
        {Event::message, part1 + part2 + part3, 0},
        {Event::message, {}, 0},
        {Event::close, bytes("bye"), 1000},
    };
    CHECK(seen == expected);

    // The same, unmasked, as a client reads a server.
    const Bytes server_stream = from_server(Opcode::binary, true, big) + from_server(Opcode::binary, false, part1) +
                                from_server(Opcode::ping, true, bytes("hi")) +
                                from_server(Opcode::continuation, true, part2) +
                                from_server(Opcode::close, true, {});
    const std::vector<Seen> server_expected{
        {Event::message, big, 0},
        {Event::ping, bytes("hi"), 0},
        {Event::message, part1 + part2, 0},
        {Event::close, {}, close_no_status},
    };
    CHECK(decode_every_way(Role::client, server_stream) == server_expected);
}

TEST_CASE("websocket: control frames between three fragments leave the message whole") {
    const Bytes a = pattern(40, 8), b = pattern(100, 9), c = pattern(30, 10);
    Reader r(Role::server);
    CHECK_FALSE(r.decoder.mid_frame());
    r.feed(from_client(Opcode::binary, false, a));
    CHECK(r.seen.empty());
    CHECK(r.decoder.mid_frame());  // between fragments
    r.feed(from_client(Opcode::ping, true, bytes("p1")));
    r.feed(from_client(Opcode::continuation, false, b));
    r.feed(from_client(Opcode::pong, true, Bytes(125, 0x55)));
    CHECK(r.decoder.mid_frame());
    r.feed(from_client(Opcode::continuation, true, c));
    CHECK_FALSE(r.decoder.mid_frame());
    const std::vector<Seen> expected{
        {Event::ping, bytes("p1"), 0},
        {Event::pong, Bytes(125, 0x55), 0},
        {Event::message, a + b + c, 0},
    };
    CHECK(r.seen == expected);

    // A close between fragments is delivered, and ends the message with the decoder.
    Reader closing(Role::server);
    closing.feed(from_client(Opcode::binary, false, a) + from_client(Opcode::close, true, close_payload(1001, "")) +
                 from_client(Opcode::continuation, true, c));
    REQUIRE(closing.seen.size() == 1);
    CHECK(closing.seen[0] == Seen{Event::close, {}, 1001});
}

TEST_CASE("websocket: a ping's payload is there until the decoder goes on") {
    MessageDecoder d(Role::server, no_limit);
    const Bytes stream = from_client(Opcode::ping, true, bytes("first")) + from_client(Opcode::pong, true, bytes("second"));
    const std::size_t used = d.feed(stream.data(), stream.size());
    CHECK(used == 2 + 4 + 5);  // stops at the ping
    CHECK(d.event() == Event::ping);
    CHECK(d.feed(stream.data() + used, stream.size() - used) == 0);  // nothing while an event waits
    CHECK(d.control_payload() == "first");
    CHECK(d.take_message().empty());  // not a message: nothing to take
    CHECK(d.event() == Event::ping);
    d.next();
    CHECK(d.feed(stream.data() + used, stream.size() - used) == stream.size() - used);
    CHECK(d.event() == Event::pong);
    CHECK(d.control_payload() == "second");
    CHECK(d.held_bytes() == 0);  // control payloads never touch the heap
}

TEST_CASE("websocket: a message may be taken into a payload or dropped") {
    MessageDecoder d(Role::client, no_limit);
    const Bytes m1 = pattern(200, 11), m2 = pattern(3, 12);
    const Bytes stream = from_server(Opcode::binary, true, m1) + from_server(Opcode::binary, true, m2) +
                         from_server(Opcode::binary, true, m1);
    std::size_t used = d.feed(stream.data(), stream.size());
    Payload out;
    REQUIRE(d.take_into(out));
    CHECK(out == m1);
    CHECK_FALSE(d.take_into(out));  // taken: nothing waits
    CHECK(out == m1);               // untouched by a failed take
    used += d.feed(stream.data() + used, stream.size() - used);
    REQUIRE(d.event() == Event::message);
    d.next();  // dropped
    CHECK(d.event() == Event::none);
    used += d.feed(stream.data() + used, stream.size() - used);
    CHECK(used == stream.size());
    CHECK(d.take_message() == m1);
}

TEST_CASE("websocket: the side a frame comes from must mask as RFC 6455 5.1 says") {
    check_error(Role::server, from_server(Opcode::binary, true, bytes("x")), 1002);
    check_error(Role::server, from_server(Opcode::ping, true, {}), 1002);
    check_error(Role::client, from_client(Opcode::binary, true, bytes("x")), 1002);
    check_error(Role::client, from_client(Opcode::close, true, close_payload(1000, "")), 1002);
}

TEST_CASE("websocket: reserved bits and reserved opcodes are protocol errors") {
    for (std::uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
        CAPTURE(int{rsv});
        Bytes f = from_client(Opcode::binary, true, bytes("x"));
        f[0] |= rsv;
        check_error(Role::server, f, 1002);
        Bytes p = from_server(Opcode::ping, true, {});
        p[0] |= rsv;
        check_error(Role::client, p, 1002);
    }
    for (std::uint8_t op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        CAPTURE(int{op});
        check_error(Role::server, Bytes{static_cast<std::uint8_t>(0x80 | op), 0x80} + Bytes(key_a.begin(), key_a.end()), 1002);
        check_error(Role::client, Bytes{static_cast<std::uint8_t>(0x80 | op), 0x00}, 1002);
    }
    // Refused at the second byte, before the mask key arrives.
    MessageDecoder d(Role::server, no_limit);
    const std::uint8_t two[] = {0xC2, 0x85};
    CHECK(d.feed(two, 2) == 2);
    CHECK(d.event() == Event::error);
    CHECK(d.status() == 1002);
}

TEST_CASE("websocket: control frames over 125 bytes or fragmented are protocol errors") {
    const Bytes k(key_a.begin(), key_a.end());
    check_error(Role::server, Bytes{0x89, 0xFE, 0x00, 0x7E} + k + Bytes(126, 0), 1002);  // 126-byte ping
    check_error(Role::server, Bytes{0x89, 0xFE, 0x00, 0x05} + k + Bytes(5, 0), 1002);    // 5 bytes, 16-bit form
    check_error(Role::client, Bytes{0x88, 0x7F, 0, 0, 0, 0, 0, 0, 0, 2, 0x03, 0xE8}, 1002);
    check_error(Role::server, Bytes{0x09, 0x80} + k, 1002);  // ping without FIN
    check_error(Role::client, Bytes{0x0A, 0x00}, 1002);      // pong without FIN
    check_error(Role::client, Bytes{0x08, 0x02, 0x03, 0xE8}, 1002);
    // Inside a fragmented message too.
    check_error(Role::client, from_server(Opcode::binary, false, bytes("ab")) + Bytes{0x09, 0x00}, 1002);
    // 125 bytes is the most, and fine.
    const auto seen = decode_every_way(Role::server, from_client(Opcode::ping, true, Bytes(125, 7)));
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == Seen{Event::ping, Bytes(125, 7), 0});
}

TEST_CASE("websocket: fragments out of order are protocol errors") {
    // A continuation without a message started, final or not.
    check_error(Role::server, from_client(Opcode::continuation, true, bytes("x")), 1002);
    check_error(Role::client, from_server(Opcode::continuation, false, bytes("x")), 1002);
    // A continuation after a message has ended.
    check_error(Role::client,
                from_server(Opcode::binary, false, bytes("a")) + from_server(Opcode::continuation, true, bytes("b")) +
                    from_server(Opcode::continuation, true, bytes("c")),
                1002);
    // A new data frame while a fragmented message is open.
    check_error(Role::server, from_client(Opcode::binary, false, bytes("a")) + from_client(Opcode::binary, true, bytes("b")),
                1002);
    check_error(Role::server, from_client(Opcode::binary, false, bytes("a")) + from_client(Opcode::text, true, bytes("b")),
                1002);
}

TEST_CASE("websocket: text frames are unsupported data") {
    check_error(Role::server, from_client(Opcode::text, true, bytes("hello")), 1003);
    check_error(Role::client, from_server(Opcode::text, false, bytes("hel")), 1003);
    check_error(Role::client, from_server(Opcode::text, true, {}), 1003);
}

TEST_CASE("websocket: a 64-bit length with its top bit set is a protocol error") {
    check_error(Role::client, Bytes{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0x05}, 1002);
    check_error(Role::server, Bytes{0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 1002);
    // Non-minimal length forms are accepted.
    const std::vector<Seen> five{{Event::message, bytes("12345"), 0}};
    CHECK(decode_every_way(Role::client, Bytes{0x82, 0x7E, 0x00, 0x05} + bytes("12345")) == five);
    CHECK(decode_every_way(Role::client, Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x05} + bytes("12345")) == five);
}

TEST_CASE("websocket: close frames carry a code allowed on the wire and a UTF-8 reason") {
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
        CAPTURE(code);
        CHECK(valid_close_code(code));
        const Seen s = stop_of(Role::server, from_client(Opcode::close, true, close_payload(code, "done")));
        CHECK(s == Seen{Event::close, bytes("done"), code});
    }
    for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        CAPTURE(code);
        CHECK_FALSE(valid_close_code(code));
        check_error(Role::server, from_client(Opcode::close, true, close_payload(code, "")), 1002);
    }
    // No payload: a close without a status, reported as 1005.
    CHECK(stop_of(Role::client, from_server(Opcode::close, true, {})) == Seen{Event::close, {}, close_no_status});
    // One byte cannot hold a code.
    check_error(Role::client, from_server(Opcode::close, true, {0x03}), 1002);
    check_error(Role::server, from_client(Opcode::close, true, {0x03}), 1002);
    // Even when what a ping left behind would make a valid code of it.
    check_error(Role::client, from_server(Opcode::ping, true, {0x03, 0xE8}) + from_server(Opcode::close, true, {0x03}), 1002);
    // A reason in UTF-8 of every length, and the longest reason there is room for.
    const std::string greek = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5 \xF0\x9F\x98\x80";
    CHECK(stop_of(Role::client, from_server(Opcode::close, true, close_payload(1000, greek))) ==
          Seen{Event::close, bytes(greek), 1000});
    const std::string longest(123, 'r');
    CHECK(stop_of(Role::server, from_client(Opcode::close, true, close_payload(4000, longest))) ==
          Seen{Event::close, bytes(longest), 4000});
    // Reasons that are not UTF-8: a stray byte, an overlong form, a surrogate, a cut
    // sequence, a code point above U+10FFFF, a lone continuation byte.
    for (std::string_view bad : {"\xFF", "\xC0\x80", "\xED\xA0\x80", "ok\xE2\x82", "\xF4\x90\x80\x80", "\x80", "\xF8\x88\x80\x80\x80"}) {
        CAPTURE(bad);
        check_error(Role::server, from_client(Opcode::close, true, close_payload(1000, bad)), 1007);
    }
}

TEST_CASE("websocket: after a close the bytes that follow are left alone") {
    const Bytes close = from_server(Opcode::close, true, close_payload(1000, "bye"));
    const Bytes stream = close + from_server(Opcode::binary, true, bytes("late"));
    MessageDecoder d(Role::client, no_limit);
    CHECK(d.feed(stream.data(), stream.size()) == close.size());
    CHECK(d.event() == Event::close);
    CHECK(d.status() == 1000);
    CHECK(d.reason() == "bye");
    CHECK(d.feed(stream.data() + close.size(), stream.size() - close.size()) == 0);
    CHECK(d.event() == Event::close);
    CHECK(d.reason() == "bye");
}

TEST_CASE("websocket: a message above the maximum is refused with 1009") {
    const std::size_t max = 1024;
    // Exactly the maximum, whole or in fragments, passes.
    const Bytes full = pattern(max, 13);
    CHECK(decode_every_way(Role::server, from_client(Opcode::binary, true, full), max) ==
          std::vector<Seen>{{Event::message, full, 0}});
    const Bytes head(full.begin(), full.begin() + 1000), tail(full.begin() + 1000, full.end());
    CHECK(decode_every_way(Role::server,
                           from_client(Opcode::binary, false, head) + from_client(Opcode::continuation, true, tail),
                           max) == std::vector<Seen>{{Event::message, full, 0}});
    // A byte more is refused, in one frame or across fragments, at the header that
    // makes it too big: none of that frame's payload is read.
    check_error(Role::server, from_client(Opcode::binary, true, pattern(max + 1, 14)), 1009, max);
    const Bytes first = from_client(Opcode::binary, false, head);
    const Bytes over = from_client(Opcode::continuation, true, pattern(25, 15));
    MessageDecoder d(Role::server, max);
    const Bytes stream = first + over;
    CHECK(d.feed(stream.data(), stream.size()) == first.size() + 2);  // the second header's two bytes
    CHECK(d.event() == Event::error);
    CHECK(d.status() == close_message_too_big);
    CHECK(d.held_bytes() == 0);  // the partial message is freed
    // Control frames do not count against it.
    const Bytes ping = from_client(Opcode::ping, true, Bytes(125, 1));
    CHECK(decode_every_way(Role::server, ping, 0) == std::vector<Seen>{{Event::ping, Bytes(125, 1), 0}});
}

TEST_CASE("websocket: a header announcing 1 GiB with a 1 KiB limit is refused before any allocation") {
    // 2 bytes and a 64-bit length: refused before the mask key, with nothing held.
    const Bytes gib{0x82, 0xFF, 0, 0, 0, 0, 0x40, 0x00, 0x00, 0x00};
    for (std::size_t cut = 0; cut < gib.size(); ++cut) {
        CAPTURE(cut);
        MessageDecoder d(Role::server, 1024);
        CHECK(d.feed(gib.data(), cut) == cut);
        CHECK(d.event() == Event::none);  // not yet: the length is not whole
        CHECK(d.held_bytes() == 0);
        CHECK(d.feed(gib.data() + cut, gib.size() - cut) == gib.size() - cut);
        CHECK(d.event() == Event::error);
        CHECK(d.status() == 1009);
        CHECK(d.held_bytes() == 0);
    }
    // The same after part of a message has arrived: what is held stays what arrived.
    MessageDecoder d(Role::client, 1024);
    const Bytes first = from_server(Opcode::binary, false, pattern(1000, 16));
    CHECK(d.feed(first.data(), first.size()) == first.size());
    const std::size_t held = d.held_bytes();
    CHECK(held >= 1000);
    CHECK(held <= 2000);
    const Bytes more{0x00, 0x7F, 0, 0, 0, 0, 0x40, 0x00, 0x00, 0x00};
    CHECK(d.feed(more.data(), more.size()) == more.size());
    CHECK(d.status() == 1009);
    CHECK(d.held_bytes() == 0);
}

TEST_CASE("websocket: the reassembly buffer grows with what arrives, not with what is announced") {
    const std::size_t length = 1 << 20;
    const Bytes payload = pattern(length, 17);
    const Bytes stream = from_client(Opcode::binary, true, payload, key_b);
    MessageDecoder d(Role::server, 64u << 20);
    const std::size_t header = 2 + 8 + 4;
    CHECK(d.feed(stream.data(), header) == header);
    CHECK(d.held_bytes() == 0);  // the header alone allocates nothing
    std::size_t at = header;
    while (at < stream.size()) {
        const std::size_t n = std::min<std::size_t>(4096, stream.size() - at);
        REQUIRE(d.feed(stream.data() + at, n) == n);
        at += n;
        const std::size_t arrived = at - header;
        CAPTURE(arrived);
        CHECK(d.held_bytes() >= arrived);
        CHECK(d.held_bytes() <= 2 * arrived);
    }
    REQUIRE(d.event() == Event::message);
    const Payload m = d.take_message();
    CHECK(m == payload);
    CHECK(m.heap_capacity() <= length + length / 2);  // capped at the frame's end, not doubled past it
}

TEST_CASE("websocket: a message starts on a pooled buffer when one is kept") {
    mesh::detail::BufferPool pool(64 * 1024);
    Payload spent(4000, 1);
    pool.give(spent);
    REQUIRE(pool.size() == 1);
    MessageDecoder d(Role::client, no_limit);
    d.use_pool(&pool);
    const Bytes m = pattern(3000, 18);
    const Bytes stream = from_server(Opcode::binary, true, m);
    CHECK(d.feed(stream.data(), stream.size()) == stream.size());
    CHECK(pool.size() == 0);  // taken
    const Payload got = d.take_message();
    CHECK(got == m);
    CHECK(got.heap_capacity() >= 4000);  // the pooled buffer, not a new one of 3000
}

// ---- the HTTP upgrade handshake ----

TEST_CASE("websocket: build_request writes the upgrade request and refuses text that would break it") {
    CHECK(build_request("server.example.com", "/chat", "dGhlIHNhbXBsZSBub25jZQ==") ==
          "GET /chat HTTP/1.1\r\n"
          "Host: server.example.com\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n"
          "\r\n");
    CHECK(build_request("[::1]:8080", "/a/b?c=d", "k").find("GET /a/b?c=d HTTP/1.1\r\nHost: [::1]:8080\r\n") == 0);
    CHECK(build_request("", "/", "k").empty());
    CHECK(build_request("h", "", "k").empty());
    CHECK(build_request("h", "chat", "k").empty());
    CHECK(build_request("h", "/a b", "k").empty());
    CHECK(build_request("h\r\nEvil: 1", "/", "k").empty());
    CHECK(build_request("h", "/\r\nEvil: 1", "k").empty());
    CHECK(build_request("h", "/", "k\n").empty());
    CHECK(build_request("h", "/", "").empty());
}

TEST_CASE("websocket: build_response and build_rejection write what a client reads") {
    CHECK(build_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "\r\n");
    CHECK(build_rejection(426) ==
          "HTTP/1.1 426 Upgrade Required\r\n"
          "Sec-WebSocket-Version: 13\r\n"
          "Connection: close\r\n"
          "Content-Length: 0\r\n"
          "\r\n");
    CHECK(build_rejection(400) == "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    CHECK(build_rejection(431).find("HTTP/1.1 431 Request Header Fields Too Large\r\n") == 0);
    CHECK(build_rejection(418).find("HTTP/1.1 418 Error\r\n") == 0);
    CHECK(build_rejection(101).find("HTTP/1.1 400 ") == 0);  // a rejection is never a success
    CHECK(build_rejection(999).find("HTTP/1.1 400 ") == 0);
    CHECK(http_status(HandshakeError::bad_version) == 426);
    CHECK(http_status(HandshakeError::too_large) == 431);
    CHECK(http_status(HandshakeError::missing_key) == 400);
    CHECK(http_status(HandshakeError::malformed) == 400);
    // Each error says what it is, differently.
    std::vector<std::string> texts;
    for (int e = 0; e <= static_cast<int>(HandshakeError::unrequested_option); ++e)
        texts.push_back(describe(static_cast<HandshakeError>(e)));
    std::sort(texts.begin(), texts.end());
    CHECK(std::adjacent_find(texts.begin(), texts.end()) == texts.end());
}

namespace {

const std::string rfc_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

// A request of `start` and `fields` (each line ending in CRLF), then its blank line.
std::string request_with(std::string_view start, std::string_view fields) {
    return std::string(start) + "\r\n" + std::string(fields) + "\r\n";
}

const std::string good_fields =
    "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n";

HandshakeError parse_request(const std::string& text, std::size_t limit = default_handshake_limit) {
    RequestParser p(limit);
    const std::size_t used = p.feed(text.data(), text.size());
    CHECK(p.done());
    if (p.error() == HandshakeError::none) CHECK(used == text.size());
    return p.error();
}

} // namespace

TEST_CASE("websocket: the RFC 6455 request parses split at every byte boundary") {
    const std::string after = "\x81\x85\x37\xFA";  // the client's first frame, not the parser's
    const std::string stream = rfc_request + after;
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        RequestParser p;
        std::size_t used = p.feed(stream.data(), cut);
        CHECK(p.done() == (cut >= rfc_request.size()));
        used += p.feed(stream.data() + used, stream.size() - used);
        CHECK(used == rfc_request.size());
        REQUIRE(p.done());
        CHECK(p.error() == HandshakeError::none);
        CHECK(p.path() == "/chat");
        CHECK(p.host() == "server.example.com");
        CHECK(p.key() == "dGhlIHNhbXBsZSBub25jZQ==");
    }
    RequestParser bytewise;
    std::size_t used = 0;
    for (std::size_t i = 0; i < stream.size(); ++i) used += bytewise.feed(stream.data() + i, 1);
    CHECK(used == rfc_request.size());
    CHECK(bytewise.error() == HandshakeError::none);
    CHECK(bytewise.feed(stream.data(), stream.size()) == 0);  // done: nothing more is read
}

TEST_CASE("websocket: a request over the size limit is refused as soon as it is") {
    const std::size_t limit = 8192;
    // Exactly the limit passes; a byte more does not.
    const std::string base = request_with("GET / HTTP/1.1", good_fields + "X-Pad: ");
    const std::string exact = request_with("GET / HTTP/1.1", good_fields + "X-Pad: " +
                                                                 std::string(limit - base.size() - 2, 'p') + "\r\n");
    REQUIRE(exact.size() == limit);
    CHECK(parse_request(exact, limit) == HandshakeError::none);
    const std::string over = request_with("GET / HTTP/1.1", good_fields + "X-Pad: " +
                                                                std::string(limit - base.size() - 1, 'p') + "\r\n");
    CHECK(parse_request(over, limit) == HandshakeError::too_large);
    // A stream with no end stops being read at the limit, whatever keeps coming.
    RequestParser p(limit);
    const std::string junk(100000, 'A');
    CHECK(p.feed(junk.data(), junk.size()) == limit);
    CHECK(p.done());
    CHECK(p.error() == HandshakeError::too_large);
    CHECK(http_status(p.error()) == 431);
    CHECK(p.feed(junk.data(), junk.size()) == 0);
    // A small limit applies too.
    CHECK(parse_request(rfc_request, 64) == HandshakeError::too_large);
}

TEST_CASE("websocket: requests missing what an upgrade needs are refused with distinct errors") {
    struct Case {
        const char* what;
        std::string text;
        HandshakeError error;
    };
    const std::string key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const std::string version = "Sec-WebSocket-Version: 13\r\n";
    const std::string upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    const Case cases[] = {
        {"the good one", request_with("GET /x HTTP/1.1", good_fields), HandshakeError::none},
        {"POST", request_with("POST /x HTTP/1.1", good_fields), HandshakeError::not_get},
        {"lower-case method", request_with("get /x HTTP/1.1", good_fields), HandshakeError::not_get},
        {"HTTP/1.0", request_with("GET /x HTTP/1.0", good_fields), HandshakeError::bad_http_version},
        {"HTTP/2", request_with("GET /x HTTP/2", good_fields), HandshakeError::bad_http_version},
        {"no target", request_with("GET HTTP/1.1", good_fields), HandshakeError::malformed},
        {"two spaces", request_with("GET  /x HTTP/1.1", good_fields), HandshakeError::malformed},
        {"relative target", request_with("GET x HTTP/1.1", good_fields), HandshakeError::malformed},
        {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", HandshakeError::malformed},
        {"only a blank line", "\r\n", HandshakeError::malformed},
        {"field without colon", request_with("GET / HTTP/1.1", good_fields + "Oops\r\n"), HandshakeError::malformed},
        {"blank before colon", request_with("GET / HTTP/1.1", good_fields + "X-A : b\r\n"), HandshakeError::malformed},
        {"folded line", request_with("GET / HTTP/1.1", good_fields + "X-A: b\r\n c\r\n"), HandshakeError::malformed},
        {"empty name", request_with("GET / HTTP/1.1", good_fields + ": b\r\n"), HandshakeError::malformed},
        {"bare CR in a value", request_with("GET / HTTP/1.1", good_fields + "X-A: b\rc\r\n"), HandshakeError::malformed},
        {"NUL in a value", request_with("GET / HTTP/1.1", good_fields + std::string("X-A: b\0c\r\n", 10)),
         HandshakeError::malformed},
        {"no Host", request_with("GET / HTTP/1.1", upgrade + key + version), HandshakeError::missing_host},
        {"empty Host", request_with("GET / HTTP/1.1", "Host:\r\n" + upgrade + key + version), HandshakeError::missing_host},
        {"two Hosts", request_with("GET / HTTP/1.1", "Host: a\r\nHost: b\r\n" + upgrade + key + version),
         HandshakeError::missing_host},
        {"no Upgrade", request_with("GET / HTTP/1.1", "Host: h\r\nConnection: Upgrade\r\n" + key + version),
         HandshakeError::not_upgrade},
        {"Upgrade: h2c", request_with("GET / HTTP/1.1", "Host: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + key + version),
         HandshakeError::not_upgrade},
        {"Upgrade: websockets", request_with("GET / HTTP/1.1", "Host: h\r\nUpgrade: websockets\r\nConnection: Upgrade\r\n" + key + version),
         HandshakeError::not_upgrade},
        {"no Connection", request_with("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\n" + key + version),
         HandshakeError::no_connection_upgrade},
        {"Connection: keep-alive", request_with("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n" + key + version),
         HandshakeError::no_connection_upgrade},
        {"Connection: upgraded", request_with("GET / HTTP/1.1", "Host: h\r\nUpgrade: websocket\r\nConnection: upgraded\r\n" + key + version),
         HandshakeError::no_connection_upgrade},
        {"no version", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + key), HandshakeError::bad_version},
        {"version 8", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + key + "Sec-WebSocket-Version: 8\r\n"),
         HandshakeError::bad_version},
        {"version 13, 8", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + key + "Sec-WebSocket-Version: 13, 8\r\n"),
         HandshakeError::bad_version},
        {"two versions", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + key + version + version),
         HandshakeError::bad_version},
        {"no key", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + version), HandshakeError::missing_key},
        {"15-byte key", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + version + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n"),
         HandshakeError::bad_key},
        {"17-byte key", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + version + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXM=\r\n"),
         HandshakeError::bad_key},
        {"key not base64", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + version + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!\r\n"),
         HandshakeError::bad_key},
        {"empty key", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + version + "Sec-WebSocket-Key:\r\n"),
         HandshakeError::bad_key},
        {"two keys", request_with("GET / HTTP/1.1", "Host: h\r\n" + upgrade + version + key + key), HandshakeError::bad_key},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        CHECK(parse_request(c.text) == c.error);
    }
    // A refused request gives nothing a transport could use by mistake.
    RequestParser p;
    const std::string text = request_with("GET /x HTTP/1.1", "Host: h\r\n" + upgrade + key);
    p.feed(text.data(), text.size());
    CHECK(p.error() == HandshakeError::bad_version);
    CHECK(p.path().empty());
    CHECK(p.key().empty());
}

TEST_CASE("websocket: request field names and tokens are matched without case") {
    const std::string text =
        "GET /Chat?Room=1 HTTP/1.1\r\n"
        "HOST: Server.Example.com:8080\r\n"
        "upgrade: WebSocket\r\n"
        "connection: keep-alive, UPGRADE\r\n"
        "SEC-WEBSOCKET-KEY:   dGhlIHNhbXBsZSBub25jZQ==  \r\n"
        "sec-websocket-version:13\r\n"
        "\r\n";
    RequestParser p;
    CHECK(p.feed(text.data(), text.size()) == text.size());
    CHECK(p.error() == HandshakeError::none);
    CHECK(p.path() == "/Chat?Room=1");  // the path keeps its case
    CHECK(p.host() == "Server.Example.com:8080");
    CHECK(p.key() == "dGhlIHNhbXBsZSBub25jZQ==");
    // The lists may come as several fields, among other tokens, and lines may end in a bare LF.
    CHECK(parse_request("GET / HTTP/1.1\nHost: h\nUpgrade: foo/2\nUpgrade: bar, websocket\nConnection: close\n"
                        "Connection: x,upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n") ==
          HandshakeError::none);
}

namespace {

const std::string rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";

std::string response_with(std::string_view status, std::string_view fields) {
    return std::string(status) + "\r\n" + std::string(fields) + "\r\n";
}

const std::string good_response_fields =
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

HandshakeError parse_response(const std::string& text, std::size_t limit = default_handshake_limit) {
    ResponseParser p(rfc_key, limit);
    const std::size_t used = p.feed(text.data(), text.size());
    CHECK(p.done());
    if (p.error() == HandshakeError::none) CHECK(used == text.size());
    return p.error();
}

} // namespace

TEST_CASE("websocket: the server's response is checked split at every byte boundary") {
    const std::string response = build_response(accept_key(rfc_key));
    const std::string stream = response + "\x82\x02hi";  // the server's first frame follows at once
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        ResponseParser p(rfc_key);
        std::size_t used = p.feed(stream.data(), cut);
        CHECK(p.done() == (cut >= response.size()));
        used += p.feed(stream.data() + used, stream.size() - used);
        CHECK(used == response.size());
        REQUIRE(p.done());
        CHECK(p.error() == HandshakeError::none);
        CHECK(p.status() == 101);
    }
}

TEST_CASE("websocket: a response with a wrong accept key or without an upgrade is refused") {
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols", good_response_fields)) == HandshakeError::none);
    CHECK(parse_response(response_with("HTTP/1.1 101", good_response_fields)) == HandshakeError::none);
    // The accept key of another request's key, one changed byte, none, two.
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                                           accept_key("AQIDBAUGBwgJCgsMDQ4PEA==") + "\r\n")) == HandshakeError::bad_accept);
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
                                       "s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n")) == HandshakeError::bad_accept);
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket\r\nConnection: Upgrade\r\n")) ==
          HandshakeError::bad_accept);
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       good_response_fields + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) ==
          HandshakeError::bad_accept);
    // The key the accept value answers is the client's: another client's is refused.
    {
        ResponseParser p("AQIDBAUGBwgJCgsMDQ4PEA==");
        const std::string text = build_response(accept_key(rfc_key));
        p.feed(text.data(), text.size());
        CHECK(p.error() == HandshakeError::bad_accept);
    }
    // Not a switch: the status is kept for the caller to report.
    {
        ResponseParser p(rfc_key);
        const std::string text = build_rejection(403);
        CHECK(p.feed(text.data(), text.size()) == text.size());
        CHECK(p.error() == HandshakeError::bad_status);
        CHECK(p.status() == 403);
    }
    CHECK(parse_response(response_with("HTTP/1.1 200 OK", good_response_fields)) == HandshakeError::bad_status);
    CHECK(parse_response(response_with("HTTP/1.0 101 Switching Protocols", good_response_fields)) ==
          HandshakeError::bad_http_version);
    CHECK(parse_response(response_with("HTTP/1.1 1O1 Switching Protocols", good_response_fields)) == HandshakeError::malformed);
    CHECK(parse_response(response_with("HTTP/1.1 101Switching", good_response_fields)) == HandshakeError::malformed);
    CHECK(parse_response("garbage\r\n\r\n") == HandshakeError::malformed);
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) ==
          HandshakeError::not_upgrade);
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       "Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) ==
          HandshakeError::no_connection_upgrade);
    // Options the request never asked for.
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       good_response_fields + "Sec-WebSocket-Extensions: permessage-deflate\r\n")) ==
          HandshakeError::unrequested_option);
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols", good_response_fields + "Sec-WebSocket-Protocol: chat\r\n")) ==
          HandshakeError::unrequested_option);
    // Names and tokens without case, as in requests.
    CHECK(parse_response(response_with("HTTP/1.1 101 Switching Protocols",
                                       "UPGRADE: WebSocket\r\nconnection: upgrade\r\nsec-websocket-accept: "
                                       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) == HandshakeError::none);
    // The size limit.
    CHECK(parse_response(build_response(accept_key(rfc_key)), 64) == HandshakeError::too_large);
    ResponseParser p(rfc_key, 1024);
    const std::string junk(5000, 'x');
    CHECK(p.feed(junk.data(), junk.size()) == 1024);
    CHECK(p.error() == HandshakeError::too_large);
}

TEST_CASE("websocket: a client and a server complete the handshake with each other") {
    std::array<std::uint8_t, 16> random{};
    for (std::size_t i = 0; i < random.size(); ++i) random[i] = static_cast<std::uint8_t>(i * 37 + 11);
    const std::string key = make_key(random);
    CHECK(key.size() == 24);
    const std::string request = build_request("example.org:9000", "/mesh", key);
    RequestParser server;
    CHECK(server.feed(request.data(), request.size()) == request.size());
    REQUIRE(server.error() == HandshakeError::none);
    CHECK(server.done());
    CHECK(server.path() == "/mesh");
    CHECK(server.host() == "example.org:9000");
    CHECK(server.key() == key);
    const std::string response = build_response(accept_key(server.key()));
    ResponseParser client(key);
    CHECK(client.feed(response.data(), response.size()) == response.size());
    CHECK(client.done());
    CHECK(client.error() == HandshakeError::none);
    // A key made of other random bytes gives another accept value.
    random[0] ^= 1;
    CHECK(accept_key(make_key(random)) != accept_key(key));
}

} // TEST_SUITE("websocket wire")

#endif // __has_include(<mesh/wire/websocket_frame.hpp>)
