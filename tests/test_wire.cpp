#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>  // lets doctest print std::error_code values
#include <system_error>
#include <vector>

#include <mesh/mesh.hpp>

using mesh::errc;
using mesh::Payload;
using namespace mesh::wire;

namespace {

using Header = std::array<std::uint8_t, header_size>;
constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

Header header_for(std::uint32_t length) {
    Header h{};
    write_header(h.data(), length);
    return h;
}

Payload encode(const Payload& body) {
    Payload out(header_size);
    write_header(out.data(), static_cast<std::uint32_t>(body.size()));
    out.append(body.data(), body.size());
    return out;
}

// Small fixed-seed generator: unlike <random> distributions, its output is the same everywhere.
struct Rng {
    std::uint64_t state;
    std::uint32_t next() {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::uint32_t>(state >> 33);
    }
};

struct Corpus {
    std::vector<Payload> messages;
    Payload stream;
};

// 10,000 messages encoded back to back: one in eight empty, a quarter up to 3000 bytes, the rest
// small, which keeps byte-at-a-time runs quick while still crossing every boundary type.
const Corpus& corpus() {
    static const Corpus c = [] {
        Corpus out;
        Rng rng{20240601};
        for (int i = 0; i < 10000; ++i) {
            const std::uint32_t kind = rng.next() % 8;
            Payload m(kind == 0 ? 0 : kind <= 2 ? rng.next() % 3001 : 1 + rng.next() % 256);
            for (auto& b : m) b = static_cast<std::uint8_t>(rng.next());
            const Payload framed = encode(m);
            out.stream.append(framed.data(), framed.size());
            out.messages.push_back(std::move(m));
        }
        return out;
    }();
    return c;
}

// Feeds `stream` in chunks whose sizes come from next_chunk(), taking every frame as it completes.
// With zero_copy, bodies are written through body_tail()/body_filled() as a socket reader would.
template <class NextChunk>
std::vector<Payload> decode_all(const Payload& stream, NextChunk next_chunk, bool zero_copy = false) {
    FrameDecoder decoder(4096);
    std::vector<Payload> out;
    std::size_t pos = 0;
    while (pos < stream.size()) {
        const std::size_t end = std::min(stream.size(), pos + next_chunk());
        while (pos < end) {
            if (std::uint8_t* tail = zero_copy ? decoder.body_tail() : nullptr) {
                const std::size_t n = std::min(decoder.body_room(), end - pos);
                std::memcpy(tail, stream.data() + pos, n);
                decoder.body_filled(n);
                pos += n;
            } else {
                std::error_code ec;
                const std::size_t used = decoder.consume(stream.data() + pos, end - pos, ec);
                pos += used;
                if (ec || (used == 0 && !decoder.ready())) {  // an error, or a stall
                    FAIL_CHECK("decoding stopped at offset " << pos << ": " << ec.message());
                    return out;
                }
            }
            if (decoder.ready()) out.push_back(decoder.take());
        }
    }
    CHECK_FALSE(decoder.mid_frame());
    return out;
}

// Decodes a buffer expected to hold exactly one complete frame, as one call.
Payload decode_one(const Payload& bytes, std::size_t max = no_limit) {
    FrameDecoder decoder(max);
    std::error_code ec;
    CHECK(decoder.consume(bytes.data(), bytes.size(), ec) == bytes.size());
    CHECK_FALSE(ec);
    REQUIRE(decoder.ready());
    return decoder.take();
}

} // namespace

TEST_SUITE("wire") {

TEST_CASE("worked headers from the specification are byte-exact") {
    struct Case {
        std::uint32_t length;
        Header bytes;
    };
    const Case cases[] = {
        {0, {0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xFF}},
        {2, {0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xFD}},
        {3, {0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0xFC}},
        {5, {0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0xFA}},
        {300, {0x00, 0x01, 0x00, 0x00, 0x01, 0x2C, 0xD2}},
        {65536, {0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xFE}},
        {0xFFFFFFFFu, {0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x03}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.length);
        CHECK(header_for(c.length) == c.bytes);
        CHECK(header_checksum(c.bytes.data()) == c.bytes[6]);
        std::uint32_t length = 0;
        CHECK_FALSE(parse_header(c.bytes.data(), no_limit, length));
        CHECK(length == c.length);
    }
    const Payload hello = encode(mesh::to_payload("hello"));
    CHECK(hello == Payload{0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0xFA, 0x68, 0x65, 0x6C, 0x6C, 0x6F});
}

TEST_CASE("heartbeat frame") {
    const Payload frame{0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xFD, 0x08, 0x02};
    CHECK(encode(Payload{0x08, 0x02}) == frame);
    CHECK(decode_one(frame) == Payload{0x08, 0x02});
}

TEST_CASE("frame header scenarios (Splinter frame.rs)") {
    std::uint32_t length = 99;
    SUBCASE("read_version_1_zero_length") {
        const Header h{0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xFF};
        CHECK_FALSE(parse_header(h.data(), no_limit, length));
        CHECK(length == 0);
    }
    SUBCASE("read_version_and_length") {
        const Header h{0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xFD};
        CHECK_FALSE(parse_header(h.data(), no_limit, length));
        CHECK(length == 2);
    }
    SUBCASE("fail_checksum") {
        const Header h{0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00};
        CHECK(parse_header(h.data(), no_limit, length) == errc::bad_checksum);
        CHECK(length == 99);  // untouched on failure
    }
    SUBCASE("standard_write") {
        const Header h = header_for(3);
        CHECK(h == Header{0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0xFC});
    }
    SUBCASE("round_trip") {
        const Header h = header_for(100);
        CHECK_FALSE(parse_header(h.data(), no_limit, length));
        CHECK(length == 100);
    }
    SUBCASE("read_frame_v1: the decoder stops exactly at the end of the frame") {
        Payload buffer = encode(mesh::to_payload("hello"));
        buffer.resize(buffer.size() + 16, 0);  // trailing zero padding
        FrameDecoder decoder(1024);
        std::error_code ec;
        CHECK(decoder.consume(buffer.data(), buffer.size(), ec) == 12);
        CHECK_FALSE(ec);
        REQUIRE(decoder.ready());
        CHECK(decoder.take() == mesh::to_payload("hello"));
    }
    SUBCASE("frame_round_trip") {
        const Payload body = mesh::to_payload("hello world");
        CHECK(decode_one(encode(body)) == body);
    }
}

TEST_CASE("version handshake") {
    std::error_code ec = errc::timeout;
    SUBCASE("basic negotiation") {
        const auto hello = make_hello();
        CHECK(hello == std::array<std::uint8_t, 4>{0x00, 0x01, 0x00, 0x01});
        const auto reply = make_reply(hello.data(), ec);
        CHECK_FALSE(ec);
        CHECK(reply == std::array<std::uint8_t, 2>{0x00, 0x01});
        CHECK_FALSE(check_reply(reply.data()));
    }
    SUBCASE("ranges containing 1 are accepted") {
        const std::uint16_t ranges[][2] = {{1, 1}, {0, 1}, {1, 2}, {0, 0xFFFF}};
        for (const auto& r : ranges) {
            CAPTURE(r[0] * 65536 + r[1]);
            const auto hello = make_hello(r[0], r[1]);
            CHECK(make_reply(hello.data(), ec) == std::array<std::uint8_t, 2>{0x00, 0x01});
            CHECK_FALSE(ec);
        }
    }
    SUBCASE("out_of_range, min > max, 0/0 and {2,9} are refused with 00 00") {
        CHECK(make_hello(3, 5) == std::array<std::uint8_t, 4>{0x00, 0x03, 0x00, 0x05});
        const std::uint16_t ranges[][2] = {{3, 5}, {1, 0}, {5, 3}, {0, 0}, {2, 9}, {0xFFFF, 0xFFFF}};
        for (const auto& r : ranges) {
            CAPTURE(r[0] * 65536 + r[1]);
            ec.clear();
            const auto hello = make_hello(r[0], r[1]);
            CHECK(make_reply(hello.data(), ec) == std::array<std::uint8_t, 2>{0x00, 0x00});
            CHECK(ec == errc::unsupported_version);
        }
    }
    SUBCASE("unsupported_range: the connector rejects any reply but 1") {
        const std::uint8_t replies[][2] = {{0x00, 0x00}, {0x00, 0x02}, {0x01, 0x00}, {0xFF, 0xFF}};
        for (const auto& r : replies) CHECK(check_reply(r) == errc::unsupported_version);
    }
}

TEST_CASE("header validation") {
    std::uint32_t length = 0;
    SUBCASE("bad versions with a correct checksum") {
        for (std::uint16_t version : {0x0000, 0x0002, 0x7FFF, 0xFFFF}) {
            CAPTURE(version);
            Header h = header_for(10);
            h[0] = static_cast<std::uint8_t>(version >> 8);
            h[1] = static_cast<std::uint8_t>(version);
            h[6] = header_checksum(h.data());
            CHECK(parse_header(h.data(), no_limit, length) == errc::unsupported_version);
            FrameDecoder decoder(1024);
            std::error_code ec;
            decoder.consume(h.data(), h.size(), ec);
            CHECK(ec == errc::unsupported_version);
        }
    }
    SUBCASE("checks run in order: checksum, version, size") {
        Header h = header_for(0xFFFFFFFFu);
        h[1] = 0x02;
        CHECK(parse_header(h.data(), 16, length) == errc::bad_checksum);
        h[6] = header_checksum(h.data());
        CHECK(parse_header(h.data(), 16, length) == errc::unsupported_version);
    }
    SUBCASE("every single-bit flip of a valid header is rejected") {
        // An LRC catches every single-bit error, so no flip can decode as another valid header.
        const Header valid = header_for(300);
        for (std::size_t bit = 0; bit < header_size * 8; ++bit) {
            CAPTURE(bit);
            Header h = valid;
            h[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
            CHECK(parse_header(h.data(), no_limit, length) == errc::bad_checksum);
            Payload frame(h.begin(), h.end());
            frame.resize(header_size + 300, 0xAB);
            FrameDecoder decoder(1024);
            std::error_code ec;
            decoder.consume(frame.data(), frame.size(), ec);
            CHECK(ec == errc::bad_checksum);
            CHECK_FALSE(decoder.ready());
        }
    }
    SUBCASE("lengths above the maximum are refused before any allocation") {
        const std::size_t max = 1 << 16;
        for (std::uint32_t announced : {0xFFFFFFFFu, static_cast<std::uint32_t>(max + 1)}) {
            CAPTURE(announced);
            const Header h = header_for(announced);
            CHECK(parse_header(h.data(), max, length) == errc::message_too_large);
            FrameDecoder decoder(max);
            std::error_code ec;
            CHECK(decoder.consume(h.data(), h.size(), ec) == header_size);
            CHECK(ec == errc::message_too_large);
            CHECK(decoder.body_tail() == nullptr);
            CHECK(decoder.body_missing() == 0);
        }
        // Exactly the maximum is fine, and the buffer is sized to the announcement, no more.
        const Payload body(max, 0x5A);
        const Payload got = decode_one(encode(body), max);
        CHECK(got == body);
        CHECK(got.heap_capacity() == max);
        CHECK(decode_one(encode({}), 0).empty());
    }
}

TEST_CASE("a body that arrives in two pieces is allocated once, at its length") {
    const std::size_t length = 64 * 1024;
    const Header h = header_for(static_cast<std::uint32_t>(length));
    const Payload body(length, 0x17);
    FrameDecoder decoder(1 << 20);
    std::error_code ec;
    CHECK(decoder.consume(h.data(), h.size(), ec) == header_size);
    // As a 64 KiB read brings it: the header and all but 7 bytes of the body.
    CHECK(decoder.consume(body.data(), length - 7, ec) == length - 7);
    CHECK(decoder.held_bytes() == length);  // twice what arrived, capped at the body
    CHECK(decoder.consume(body.data() + length - 7, 7, ec) == 7);
    CHECK(decoder.held_bytes() == length);  // the rest fitted: no second allocation
    Payload got;
    REQUIRE(decoder.take_into(got));
    CHECK(got == body);
}

TEST_CASE("a partial body holds memory in proportion to the bytes that arrived") {
    const std::size_t max = 16 * 1024 * 1024;
    const Header h = header_for(static_cast<std::uint32_t>(max));
    const Payload chunk(1000, 0x42);
    SUBCASE("appended through consume") {
        FrameDecoder decoder(max);
        std::error_code ec;
        CHECK(decoder.consume(h.data(), h.size(), ec) == header_size);
        CHECK(decoder.held_bytes() == 0);  // a header alone costs nothing
        for (int i = 0; i < 10; ++i) decoder.consume(chunk.data(), chunk.size(), ec);
        CHECK(decoder.held_bytes() <= 2 * 10 * chunk.size());
        decoder.reset();
        CHECK(decoder.held_bytes() == 0);
    }
    SUBCASE("written through body_tail, as a socket reader does") {
        FrameDecoder decoder(max);
        std::error_code ec;
        decoder.consume(h.data(), h.size(), ec);
        std::size_t arrived = 0;
        for (int i = 0; i < 200; ++i) {
            std::uint8_t* tail = decoder.body_tail();
            REQUIRE(tail != nullptr);
            const std::size_t room = decoder.body_room();
            CHECK(room <= std::max<std::size_t>(64 * 1024, arrived));
            const std::size_t n = std::min(room, chunk.size());  // a read that fills part of the room
            std::memcpy(tail, chunk.data(), n);
            decoder.body_filled(n);
            arrived += n;
            CHECK(decoder.body_missing() == max - arrived);
            // Touched memory stays within twice the arrived bytes plus one 64 KiB step.
            CHECK(decoder.held_bytes() <= 2 * (2 * arrived + 64 * 1024));
        }
        CHECK(decoder.mid_frame());
    }
    SUBCASE("the whole body through body_tail, in the rooms it offers") {
        const std::size_t size = 3 * 1024 * 1024 + 17;
        Payload body(size);
        for (std::size_t i = 0; i < size; ++i) body[i] = static_cast<std::uint8_t>(i * 31);
        const Payload frame = encode(body);
        FrameDecoder decoder(max);
        std::error_code ec;
        std::size_t pos = decoder.consume(frame.data(), header_size, ec);
        while (!decoder.ready()) {
            std::uint8_t* tail = decoder.body_tail();
            const std::size_t n = decoder.body_room();
            std::memcpy(tail, frame.data() + pos, n);
            decoder.body_filled(n);
            pos += n;
        }
        CHECK(pos == frame.size());
        CHECK(decoder.take() == body);
    }
}

TEST_CASE("the decoder accepts input split at any byte boundary") {
    const Corpus& c = corpus();
    REQUIRE(c.messages.size() == 10000);
    SUBCASE("one byte at a time") { CHECK(decode_all(c.stream, [] { return 1; }) == c.messages); }
    SUBCASE("seven bytes at a time") { CHECK(decode_all(c.stream, [] { return 7; }) == c.messages); }
    SUBCASE("random chunk sizes") {
        Rng rng{7};
        CHECK(decode_all(c.stream, [&] { return 1 + rng.next() % 5000; }) == c.messages);
    }
    SUBCASE("whole stream at once") { CHECK(decode_all(c.stream, [] { return no_limit / 2; }) == c.messages); }
    SUBCASE("zero-copy body path, random chunks") {
        Rng rng{11};
        CHECK(decode_all(c.stream, [&] { return 1 + rng.next() % 2000; }, true) == c.messages);
    }
    SUBCASE("zero-copy body path, one byte at a time") {
        CHECK(decode_all(c.stream, [] { return 1; }, true) == c.messages);
    }
    SUBCASE("one frame split at every offset") {
        Payload body(300);
        for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<std::uint8_t>(i * 7);
        const Payload frame = encode(body);
        for (std::size_t split = 0; split <= frame.size(); ++split) {
            CAPTURE(split);
            FrameDecoder decoder(1024);
            std::error_code ec;
            CHECK(decoder.consume(frame.data(), split, ec) == split);
            CHECK(decoder.mid_frame() == (split > 0 && split < frame.size()));
            CHECK(decoder.consume(frame.data() + split, frame.size() - split, ec) == frame.size() - split);
            CHECK_FALSE(ec);
            REQUIRE(decoder.ready());
            CHECK(decoder.take() == body);
        }
    }
}

TEST_CASE("decoder state") {
    FrameDecoder decoder(1024);
    std::error_code ec;
    SUBCASE("nothing is consumed while a frame is waiting") {
        Payload two = encode(mesh::to_payload("one"));
        const Payload second = encode(mesh::to_payload("second"));
        two.append(second.data(), second.size());
        CHECK(decoder.consume(two.data(), two.size(), ec) == 10);
        CHECK(decoder.consume(two.data() + 10, two.size() - 10, ec) == 0);
        CHECK(decoder.take() == mesh::to_payload("one"));
        CHECK(decoder.take().empty());  // nothing ready
        CHECK(decoder.consume(two.data() + 10, two.size() - 10, ec) == second.size());
        CHECK(decoder.take() == mesh::to_payload("second"));
    }
    SUBCASE("take_into moves the frame into the caller's payload, and leaves it alone when none is ready") {
        Payload out = mesh::to_payload("kept");
        CHECK_FALSE(decoder.take_into(out));
        CHECK(out == mesh::to_payload("kept"));
        const Payload frame = encode(mesh::to_payload("next"));
        CHECK(decoder.consume(frame.data(), frame.size(), ec) == frame.size());
        CHECK(decoder.take_into(out));
        CHECK(out == mesh::to_payload("next"));
        CHECK_FALSE(decoder.ready());
        CHECK(decoder.consume(frame.data(), frame.size(), ec) == frame.size());  // the next frame decodes afresh
        CHECK(decoder.take() == mesh::to_payload("next"));
    }
    SUBCASE("mid_frame tracks unfinished frames") {
        const Payload frame = encode(mesh::to_payload("abcdef"));
        CHECK_FALSE(decoder.mid_frame());
        decoder.consume(frame.data(), 3, ec);
        CHECK(decoder.mid_frame());  // partial header
        decoder.consume(frame.data() + 3, 4, ec);
        CHECK(decoder.mid_frame());  // header complete, body missing
        CHECK(decoder.body_missing() == 6);
        decoder.consume(frame.data() + 7, 2, ec);
        CHECK(decoder.mid_frame());  // partial body
        CHECK(decoder.body_missing() == 4);
        decoder.consume(frame.data() + 9, 4, ec);
        CHECK(decoder.ready());
        CHECK_FALSE(decoder.mid_frame());
        CHECK(decoder.body_tail() == nullptr);
        decoder.take();
        CHECK_FALSE(decoder.mid_frame());
        CHECK_FALSE(ec);
    }
    SUBCASE("a zero-length frame is ready as soon as its header is in") {
        const Header h = header_for(0);
        CHECK(decoder.consume(h.data(), h.size(), ec) == header_size);
        CHECK(decoder.ready());
        CHECK_FALSE(decoder.mid_frame());
        CHECK(decoder.body_tail() == nullptr);
        CHECK(decoder.take().empty());
    }
    SUBCASE("errors are sticky until reset") {
        const Header bad{0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00};
        CHECK(decoder.consume(bad.data(), bad.size(), ec) == header_size);
        CHECK(ec == errc::bad_checksum);
        const Payload good = encode(mesh::to_payload("ok"));
        for (int i = 0; i < 3; ++i) {
            ec.clear();
            CHECK(decoder.consume(good.data(), good.size(), ec) == 0);
            CHECK(ec == errc::bad_checksum);
            CHECK_FALSE(decoder.ready());
        }
        decoder.reset();
        CHECK_FALSE(decoder.mid_frame());
        CHECK(decoder.consume(good.data(), good.size(), ec) == good.size());
        CHECK_FALSE(ec);
        CHECK(decoder.take() == mesh::to_payload("ok"));
    }
    SUBCASE("reset drops a partial frame") {
        const Payload frame = encode(mesh::to_payload("partial"));
        decoder.consume(frame.data(), 9, ec);
        decoder.reset();
        CHECK_FALSE(decoder.mid_frame());
        CHECK(decoder.consume(frame.data(), frame.size(), ec) == frame.size());
        CHECK(decoder.take() == mesh::to_payload("partial"));
    }
}

TEST_CASE("a burst of 100,000 zero-length frames") {
    const Header h = header_for(0);
    Payload stream;
    for (int i = 0; i < 100000; ++i) stream.append(h.data(), h.size());
    CHECK(decode_all(stream, [] { return no_limit / 2; }) == std::vector<Payload>(100000));
    CHECK(decode_all(stream, [] { return 3; }) == std::vector<Payload>(100000));
}

} // TEST_SUITE("wire")
