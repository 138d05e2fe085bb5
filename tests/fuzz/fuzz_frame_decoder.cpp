// Fuzzes wire::FrameDecoder as socket readers drive it: the stream arrives in
// chunks, each through consume() or through the zero-copy body_tail() path.
//
// Input: [limits] [flags] [plan: (flags & 15) + 1 bytes] [stream...]
//   limits: low nibble picks the constructor's maximum, high nibble the value
//           given to limit() (which may only lower it).
//   flags:  bit 4: after an error, reset() and go on decoding the rest;
//           bit 5: while a frame is ready, check that nothing more is consumed.
//   plan:   one byte per chunk, used in a cycle. Bit 7: offer the chunk through
//           body_tail() when a body is being read. Bits 0-6: 0 = an empty call
//           (then one byte), 1..100 = that many bytes, 101..126 = (n - 100) * 512
//           bytes, 127 = all the rest.
// The frames and errors seen must match an independent reference parser, and the
// frames re-encoded must decode to themselves in one pass.

#include <mesh/envelope.hpp>
#include <mesh/wire/frame_decoder.hpp>
#include <mesh/wire/frame_header.hpp>

#include "fuzz_check.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <system_error>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kLimits[16] = {
    0, 1, 2, 7, 8, 255, 4096, 65535, 65536, 65537, 131072, 1u << 20, 16u << 20, 0xFFFFFFFFu,
    std::numeric_limits<std::size_t>::max(), 100,
};
constexpr std::size_t kHeader = 7;
constexpr std::size_t kStep = 64 * 1024;

// A frame, or the error that ended (or interrupted) the stream.
struct Event {
    std::error_code error;
    mesh::Payload payload;
    bool operator==(const Event& other) const { return error == other.error && payload == other.payload; }
};

// The wire format read straight from the specification: all seven header bytes sum
// to zero mod 256, then version 1, then a length within the maximum.
std::vector<Event> reference_parse(const std::uint8_t* data, std::size_t size, std::size_t max, bool resume,
                                   bool& trailing) {
    std::vector<Event> events;
    std::size_t pos = 0;
    trailing = false;
    while (size - pos >= kHeader) {
        const std::uint8_t* h = data + pos;
        unsigned sum = 0;
        for (std::size_t i = 0; i < kHeader; ++i) sum += h[i];
        const unsigned version = (unsigned{h[0]} << 8) | h[1];
        const std::uint64_t length = (std::uint64_t{h[2]} << 24) | (std::uint64_t{h[3]} << 16) |
                                     (std::uint64_t{h[4]} << 8) | h[5];
        std::error_code error;
        if ((sum & 0xFF) != 0) error = mesh::errc::bad_checksum;
        else if (version != 1) error = mesh::errc::unsupported_version;
        else if (length > max) error = mesh::errc::message_too_large;
        if (error) {
            events.push_back({error, {}});
            if (!resume) return events;  // the decoder stops here for good
            pos += kHeader;
            continue;
        }
        if (size - pos - kHeader < length) break;
        events.push_back({{}, mesh::Payload(h + kHeader, h + kHeader + length)});
        pos += kHeader + length;
    }
    trailing = pos < size;
    return events;
}

std::size_t chunk_length(std::uint8_t code, std::size_t left) {
    const unsigned n = code & 0x7F;
    std::size_t length;
    if (n == 127) length = left;
    else if (n > 100) length = static_cast<std::size_t>(n - 100) * 512;
    else length = n;
    return std::min(length, left);
}

// What a partial frame may hold: twice (what arrived, doubled, plus one growth step).
bool within_bound(const mesh::wire::FrameDecoder& decoder, std::size_t arrived) {
    return decoder.held_bytes() <= 2 * (2 * arrived + kStep);
}

void check_sticky(mesh::wire::FrameDecoder& decoder, const std::error_code& error, const std::uint8_t* rest,
                  std::size_t left) {
    std::error_code again;
    FUZZ_CHECK(decoder.consume(rest, left, again) == 0);
    FUZZ_CHECK(again == error);
    static const std::uint8_t one = 0;
    FUZZ_CHECK(decoder.consume(&one, 1, again) == 0);
    FUZZ_CHECK(again == error);
    FUZZ_CHECK(!decoder.ready());
    FUZZ_CHECK(decoder.take().empty());
    FUZZ_CHECK(decoder.body_missing() == 0);
    FUZZ_CHECK(decoder.body_tail() == nullptr);
}

// The frames written back with the library's own encoder decode to themselves.
void check_round_trip(const std::vector<Event>& events, std::size_t max) {
    Bytes wire;
    std::vector<Event> frames;
    for (const auto& e : events) {
        if (e.error) continue;
        std::uint8_t header[kHeader];
        mesh::wire::write_header(header, static_cast<std::uint32_t>(e.payload.size()));
        wire.insert(wire.end(), header, header + kHeader);
        wire.insert(wire.end(), e.payload.begin(), e.payload.end());
        frames.push_back(e);
    }
    mesh::wire::FrameDecoder decoder(max);
    std::vector<Event> again;
    std::size_t pos = 0;
    for (;;) {
        if (decoder.ready()) {
            again.push_back({{}, decoder.take()});
            continue;
        }
        if (pos == wire.size()) break;
        std::error_code ec;
        const std::size_t used = decoder.consume(wire.data() + pos, wire.size() - pos, ec);
        FUZZ_CHECK(!ec);
        FUZZ_CHECK(used != 0 && used <= wire.size() - pos);
        pos += used;
    }
    FUZZ_CHECK(!decoder.mid_frame());
    FUZZ_CHECK(again == frames);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::size_t first_max = kLimits[data[0] & 15];
    const std::size_t second_max = kLimits[data[0] >> 4];
    const bool resume = (data[1] & 0x10) != 0;
    const bool probe_ready = (data[1] & 0x20) != 0;
    const std::size_t plan_size = static_cast<std::size_t>(data[1] & 15) + 1;
    if (size < 2 + plan_size) return 0;
    const std::uint8_t* plan = data + 2;
    const std::uint8_t* stream = plan + plan_size;
    const std::size_t stream_size = size - 2 - plan_size;

    mesh::wire::FrameDecoder decoder(first_max);
    decoder.limit(second_max);
    const std::size_t max = std::min(first_max, second_max);
    FUZZ_CHECK(decoder.max_payload() == max);

    std::vector<Event> events;
    std::size_t pos = 0, step = 0;
    std::size_t frame_bytes = 0;  // fed since the current frame's first header byte
    bool stopped = false;
    while (pos < stream_size && !stopped) {
        const std::uint8_t code = plan[step++ % plan_size];
        const bool zero_copy = (code & 0x80) != 0;
        std::size_t length = chunk_length(code, stream_size - pos);
        if (length == 0) {
            // An empty read (would_block) changes nothing.
            const bool was_mid = decoder.mid_frame();
            if (zero_copy && decoder.body_missing() != 0) {
                FUZZ_CHECK(decoder.body_tail() != nullptr);
                decoder.body_filled(0);
            } else {
                std::error_code ec;
                FUZZ_CHECK(decoder.consume(stream + pos, 0, ec) == 0);
                FUZZ_CHECK(!ec);
            }
            FUZZ_CHECK(decoder.mid_frame() == was_mid && !decoder.ready());
            const std::size_t arrived = frame_bytes > kHeader ? frame_bytes - kHeader : 0;
            FUZZ_CHECK(within_bound(decoder, arrived));
            length = 1;
        }

        std::size_t used = 0;
        std::error_code ec;
        if (zero_copy && decoder.body_missing() != 0) {
            const std::size_t missing = decoder.body_missing();
            const std::size_t room = decoder.body_room();
            FUZZ_CHECK(room != 0 && room <= missing);
            std::uint8_t* tail = decoder.body_tail();
            FUZZ_CHECK(tail != nullptr);
            std::memset(tail, 0xA5, room);  // all of the room must be writable
            used = std::min(length, room);
            std::memcpy(tail, stream + pos, used);
            decoder.body_filled(used);
            FUZZ_CHECK(decoder.body_missing() == missing - used);
            FUZZ_CHECK(decoder.ready() == (used == missing));
        } else {
            used = decoder.consume(stream + pos, length, ec);
            FUZZ_CHECK(used <= length);
            // It stops early only for a finished frame or an error.
            if (!ec && !decoder.ready()) FUZZ_CHECK(used == length);
        }
        pos += used;
        frame_bytes += used;

        if (ec) {
            FUZZ_CHECK(ec == mesh::errc::bad_checksum || ec == mesh::errc::unsupported_version ||
                       ec == mesh::errc::message_too_large);
            FUZZ_CHECK(frame_bytes == kHeader);  // a header error shows as its seventh byte arrives
            check_sticky(decoder, ec, stream + pos, stream_size - pos);
            FUZZ_CHECK(within_bound(decoder, 0));
            events.push_back({ec, {}});
            if (resume) {
                decoder.reset();
                FUZZ_CHECK(!decoder.mid_frame() && !decoder.ready());
                frame_bytes = 0;
            } else {
                stopped = true;
            }
            continue;
        }

        if (decoder.ready()) {
            FUZZ_CHECK(!decoder.mid_frame());
            FUZZ_CHECK(decoder.body_missing() == 0 && decoder.body_tail() == nullptr);
            if (probe_ready) {
                std::error_code again;
                FUZZ_CHECK(decoder.consume(stream + pos, stream_size - pos, again) == 0);
                FUZZ_CHECK(!again && decoder.ready());
            }
            mesh::Payload payload = decoder.take();
            FUZZ_CHECK(payload.size() <= max);
            FUZZ_CHECK(frame_bytes == kHeader + payload.size());
            FUZZ_CHECK(!decoder.ready() && !decoder.mid_frame());
            FUZZ_CHECK(within_bound(decoder, 0));
            events.push_back({{}, std::move(payload)});
            frame_bytes = 0;
        } else {
            FUZZ_CHECK(decoder.mid_frame() == (frame_bytes != 0));
            const std::size_t arrived = frame_bytes > kHeader ? frame_bytes - kHeader : 0;
            FUZZ_CHECK(within_bound(decoder, arrived));
        }
    }

    bool trailing = false;
    const auto expected = reference_parse(stream, stream_size, max, resume, trailing);
    FUZZ_CHECK(events == expected);
    if (!stopped) FUZZ_CHECK(decoder.mid_frame() == trailing);

    check_round_trip(events, max);
    return 0;
}
