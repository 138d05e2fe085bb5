#pragma once

#include "mesh/version.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "mesh/detail/buffer_pool.hpp"
#include "mesh/payload.hpp"
#include "mesh/wire/frame_header.hpp"

MESH_NAMESPACE_BEGIN
namespace wire {
/// WebSocket (RFC 6455) over bytes: frame headers, masking, an incremental message
/// decoder and the HTTP upgrade handshake, for a ws:// transport. It does no I/O.
namespace ws {

/// A frame's opcode; 3-7 and 11-15 are reserved and refused.
enum class Opcode : std::uint8_t {
    continuation = 0,  ///< the next fragment of a message
    text = 1,          ///< a UTF-8 message (refused: mesh messages are binary)
    binary = 2,        ///< a binary message, or its first fragment
    close = 8,         ///< the closing handshake
    ping = 9,          ///< asks for a pong with the same payload
    pong = 10,         ///< answers a ping (or is a one-way heartbeat)
};

/// Which end decodes: a server reads a client's frames, which must be masked; a client
/// reads a server's, which must not be.
enum class Role : std::uint8_t {
    server,  ///< decodes what a client sends
    client,  ///< decodes what a server sends
};

// Close status codes (RFC 6455 7.4.1) this library sends or reports.
/// Close status: a normal close.
constexpr std::uint16_t close_normal = 1000;
/// Close status: the end is going away (a server shutting down, a page left).
constexpr std::uint16_t close_going_away = 1001;
/// Close status: the peer broke the protocol.
constexpr std::uint16_t close_protocol_error = 1002;
/// Close status: a kind of data this end does not accept (here: text messages).
constexpr std::uint16_t close_unsupported_data = 1003;
/// Close status reported for a close frame that carries none; never sent.
constexpr std::uint16_t close_no_status = 1005;
/// Close status: data not consistent with its type (a close reason not UTF-8).
constexpr std::uint16_t close_invalid_payload = 1007;
/// Close status: a message broke this end's policy.
constexpr std::uint16_t close_policy_violation = 1008;
/// Close status: a message above this end's maximum size.
constexpr std::uint16_t close_message_too_big = 1009;
/// Close status: this end failed in a way of its own.
constexpr std::uint16_t close_internal_error = 1011;

/// The longest frame header: 2 bytes, a 64-bit length and a mask key.
constexpr std::size_t max_header_size = 14;
/// The largest payload of a control frame (close, ping, pong).
constexpr std::size_t max_control_payload = 125;

/// True for a code a close frame may carry: the defined ones (1000-1003, 1007-1014)
/// and those for libraries and applications (3000-4999). 1005, 1006 and 1015 only
/// describe a close locally, and the rest are reserved.
constexpr bool valid_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/// Writes a frame header at `out` (room for max_header_size bytes) and returns its
/// size, 2 to 14 bytes, with the shortest length form; masked when `mask_key` (4 bytes)
/// is not null. Returns 0, writing nothing, for what no peer may accept: a length with
/// the top bit set, a control frame over 125 bytes or fragmented, a reserved opcode.
inline std::size_t encode_header(std::uint8_t* out, Opcode opcode, bool fin, std::uint64_t payload_length,
                                 const std::uint8_t* mask_key) noexcept {
    const auto op = static_cast<std::uint8_t>(opcode);
    const bool control = op >= 8;
    if ((op > 2 && op < 8) || op > 10) return 0;
    if ((payload_length >> 63) != 0) return 0;
    if (control && (!fin || payload_length > max_control_payload)) return 0;
    out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | op);
    const std::uint8_t mask_bit = mask_key ? 0x80 : 0;
    std::size_t size = 2;
    if (payload_length <= 125) {
        out[1] = static_cast<std::uint8_t>(mask_bit | payload_length);
    } else if (payload_length <= 0xFFFF) {
        out[1] = static_cast<std::uint8_t>(mask_bit | 126);
        wire::detail::store_u16_be(out + 2, static_cast<std::uint16_t>(payload_length));
        size = 4;
    } else {
        out[1] = static_cast<std::uint8_t>(mask_bit | 127);
        wire::detail::store_u32_be(out + 2, static_cast<std::uint32_t>(payload_length >> 32));
        wire::detail::store_u32_be(out + 6, static_cast<std::uint32_t>(payload_length));
        size = 10;
    }
    if (mask_key) {
        std::memcpy(out + size, mask_key, 4);
        size += 4;
    }
    return size;
}

/// Masks (or unmasks: it is its own inverse) `n` payload bytes at `data` with `key`;
/// `offset` is where `data` starts within the frame's payload, so that a payload
/// may be masked in pieces as it arrives.
inline void apply_mask(std::uint8_t* data, std::size_t n, const std::array<std::uint8_t, 4>& key,
                       std::size_t offset) noexcept {
    // Eight bytes at a time: the key, rotated to `offset`, repeated in memory order
    // (so host byte order does not matter); memcpy keeps unaligned access defined.
    std::uint8_t pattern[8];
    for (std::size_t i = 0; i < 8; ++i) pattern[i] = key[(offset + i) & 3];
    std::uint64_t word_key;
    std::memcpy(&word_key, pattern, 8);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, data + i, 8);
        word ^= word_key;
        std::memcpy(data + i, &word, 8);
    }
    for (; i < n; ++i) data[i] ^= pattern[i & 7];
}

namespace detail {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
inline bool valid_utf8(const std::uint8_t* s, std::size_t n) noexcept {
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t lead = s[i];
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length;
        std::uint32_t code;
        std::uint32_t least;
        if ((lead & 0xE0) == 0xC0) {
            length = 2, code = lead & 0x1Fu, least = 0x80;
        } else if ((lead & 0xF0) == 0xE0) {
            length = 3, code = lead & 0x0Fu, least = 0x800;
        } else if ((lead & 0xF8) == 0xF0) {
            length = 4, code = lead & 0x07u, least = 0x10000;
        } else {
            return false;
        }
        if (n - i < length) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            code = (code << 6) | (s[i + k] & 0x3Fu);
        }
        if (code < least || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
        i += length;
    }
    return true;
}

} // namespace detail

/// Incremental WebSocket decoder: fed bytes split anywhere, it yields, in order,
/// whole binary messages (fragments reassembled), pings, pongs, the peer's close, or
/// the error the connection must be closed with. Control frames may come between a
/// message's fragments; they are delivered without disturbing it. After a close or
/// an error it stops.
class MessageDecoder {
public:
    /// What feed() stopped at.
    enum class Event : std::uint8_t {
        none,     ///< more bytes are needed
        message,  ///< a whole binary message waits for take_message()
        ping,     ///< a ping: answer with a pong carrying control_payload(), then next()
        pong,     ///< a pong, with control_payload(); next() goes on
        close,    ///< the peer closes with status() and reason(); the decoder has stopped
        error,    ///< the peer broke the protocol: close with status(); the decoder has stopped
    };

    /// Decodes as `role`; messages above `max_message_size` bytes, reassembled, are
    /// refused with close_message_too_big before anything is allocated for them.
    MessageDecoder(Role role, std::size_t max_message_size) noexcept : role_(role), max_(max_message_size) {}

    /// The largest message accepted.
    std::size_t max_message_size() const noexcept { return max_; }

    /// Consumes bytes until an event is ready or the input ends; returns how many it
    /// used. Uses nothing while an event waits, or once the decoder has stopped, so
    /// the bytes after a close frame are left to the caller.
    std::size_t feed(const std::uint8_t* data, std::size_t size) {
        std::size_t used = 0;
        while (used < size && event_ == Event::none)
            used += state_ == State::header ? read_header(data + used, size - used)
                                            : read_payload(data + used, size - used);
        return used;
    }

    /// The waiting event; none while more bytes are needed.
    Event event() const noexcept { return event_; }

    /// Moves the waiting message into `out` and goes on; false, with `out` untouched,
    /// if none waits.
    bool take_into(Payload& out) noexcept {
        if (event_ != Event::message) return false;
        out = std::move(message_);  // leaves message_ empty for the next message
        event_ = Event::none;
        return true;
    }

    /// Moves the waiting message out and goes on; empty if none waits.
    Payload take_message() noexcept {
        Payload out;
        take_into(out);
        return out;
    }

    /// Drops a waiting message, ping or pong and goes on; a close or an error stays.
    void next() noexcept {
        if (event_ == Event::close || event_ == Event::error) return;
        if (event_ == Event::message) message_ = Payload();
        event_ = Event::none;
    }

    /// The payload of the waiting ping or pong (what a pong must echo); valid until
    /// the next call to feed().
    std::string_view control_payload() const noexcept {
        return {reinterpret_cast<const char*>(control_.data()), control_size_};
    }

    /// After a close: the peer's status (close_no_status when it gave none). After an
    /// error: the status to close the connection with. 0 otherwise.
    std::uint16_t status() const noexcept { return status_; }

    /// After a close: the peer's reason, valid UTF-8. After an error: a short text
    /// saying what was wrong, fit for the reason of the close frame sent back.
    std::string_view reason() const noexcept {
        if (event_ == Event::error) return error_text_;
        if (event_ != Event::close || control_size_ < 2) return {};
        return {reinterpret_cast<const char*>(control_.data() + 2), control_size_ - 2};
    }

    /// True inside a frame or between the fragments of a message: the stream ending
    /// here cuts a message short.
    bool mid_frame() const noexcept { return state_ == State::payload || header_have_ != 0 || in_message_; }

    /// Heap bytes the message being reassembled holds now: at most twice what arrived
    /// (plus a pooled buffer's size, see use_pool()).
    std::size_t held_bytes() const noexcept { return message_.heap_capacity(); }

    /// Messages above the inline size start on a buffer taken from `pool` when it has
    /// one (nullptr: none); the pool must outlive its use here.
    void use_pool(mesh::detail::BufferPool* pool) noexcept { pool_ = pool; }

private:
    enum class State : std::uint8_t { header, payload };

    // The header arrives in up to three steps, each checked as soon as it is whole:
    // the first two bytes, the extended length (so an oversized message is refused
    // before its mask key arrives), then the mask key.
    std::size_t read_header(const std::uint8_t* data, std::size_t size) {
        const std::size_t target = header_have_ < 2 ? 2 : header_have_ < length_end_ ? length_end_ : header_end_;
        const std::size_t n = std::min(target - header_have_, size);
        std::memcpy(header_.data() + header_have_, data, n);
        header_have_ += n;
        if (header_have_ == 2 && !check_first_bytes()) return n;
        if (header_have_ == length_end_ && !check_length()) return n;
        if (header_have_ == header_end_) start_payload();
        return n;
    }

    bool check_first_bytes() {
        const std::uint8_t b0 = header_[0];
        const std::uint8_t b1 = header_[1];
        fin_ = (b0 & 0x80) != 0;
        opcode_ = static_cast<Opcode>(b0 & 0x0F);
        masked_ = (b1 & 0x80) != 0;
        const std::uint8_t length7 = b1 & 0x7F;
        const auto op = static_cast<std::uint8_t>(opcode_);
        control_frame_ = op >= 8;
        // No extension is negotiated, so no reserved bit has a meaning.
        if ((b0 & 0x70) != 0) return fail(close_protocol_error, "reserved bits set");
        if ((op > 2 && op < 8) || op > 10) return fail(close_protocol_error, "reserved opcode");
        // RFC 6455 5.1: clients mask every frame, servers none.
        if (role_ == Role::server && !masked_) return fail(close_protocol_error, "unmasked frame from a client");
        if (role_ == Role::client && masked_) return fail(close_protocol_error, "masked frame from a server");
        if (control_frame_) {
            if (!fin_) return fail(close_protocol_error, "fragmented control frame");
            if (length7 > max_control_payload) return fail(close_protocol_error, "control frame over 125 bytes");
        } else {
            if (opcode_ == Opcode::continuation && !in_message_)
                return fail(close_protocol_error, "continuation without a message");
            if (opcode_ != Opcode::continuation && in_message_)
                return fail(close_protocol_error, "new message inside a fragmented one");
            if (opcode_ == Opcode::text) return fail(close_unsupported_data, "text messages are not accepted");
        }
        length_end_ = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0);
        header_end_ = length_end_ + (masked_ ? 4 : 0);
        return true;
    }

    // Non-minimal length forms are accepted, as RFC 6455 does not require refusing them.
    bool check_length() {
        std::uint64_t length = header_[1] & 0x7Fu;
        if (length == 126) {
            length = wire::detail::load_u16_be(header_.data() + 2);
        } else if (length == 127) {
            length = (std::uint64_t{wire::detail::load_u32_be(header_.data() + 2)} << 32) |
                     wire::detail::load_u32_be(header_.data() + 6);
            if ((length >> 63) != 0) return fail(close_protocol_error, "64-bit length with the top bit set");
        }
        // Against what is already reassembled plus this frame, before any allocation:
        // a header may announce far more than will ever arrive.
        if (!control_frame_ && length > max_ - message_.size())
            return fail(close_message_too_big, "message too big");
        frame_length_ = static_cast<std::size_t>(length);  // fits: at most max_ or 125
        return true;
    }

    void start_payload() {
        std::memcpy(mask_.data(), header_.data() + length_end_, masked_ ? 4 : 0);
        if (!control_frame_ && opcode_ == Opcode::binary) {
            in_message_ = true;
            if (pool_ && frame_length_ > Payload::inline_capacity) pool_->take(message_);
        }
        frame_have_ = 0;
        state_ = State::payload;
        if (frame_length_ == 0) finish_frame();
    }

    std::size_t read_payload(const std::uint8_t* data, std::size_t size) {
        const std::size_t n = std::min(frame_length_ - frame_have_, size);
        if (control_frame_) {
            // Control payloads stay in the fixed buffer: they never allocate.
            std::memcpy(control_.data() + frame_have_, data, n);
            if (masked_) apply_mask(control_.data() + frame_have_, n, mask_, frame_have_);
        } else {
            append_message(data, n);
        }
        frame_have_ += n;
        if (frame_have_ == frame_length_) finish_frame();
        return n;
    }

    void append_message(const std::uint8_t* data, std::size_t n) {
        if (n == 0) return;
        const std::size_t old = message_.size();
        const std::size_t have = old + n;
        // Room for twice what has arrived, never past this frame's end, as FrameDecoder
        // grows a body: what is held stays bounded by what the peer actually sent.
        const std::size_t frame_end = old - frame_have_ + frame_length_;
        if (frame_end > Payload::inline_capacity && message_.heap_capacity() < have)
            mesh::detail::PayloadStorage::reserve(message_, have > frame_end / 2 ? frame_end : 2 * have);
        message_.append(data, n);
        if (masked_) apply_mask(message_.data() + old, n, mask_, frame_have_);
    }

    void finish_frame() {
        state_ = State::header;
        header_have_ = 0;
        if (!control_frame_) {
            if (fin_) {
                in_message_ = false;
                event_ = Event::message;
            }
            return;
        }
        control_size_ = frame_length_;
        if (opcode_ == Opcode::ping) event_ = Event::ping;
        else if (opcode_ == Opcode::pong) event_ = Event::pong;
        else finish_close();
    }

    void finish_close() {
        if (control_size_ == 0) {
            stop(Event::close, close_no_status);
            return;
        }
        if (control_size_ == 1) {
            fail(close_protocol_error, "close payload of one byte");
            return;
        }
        const std::uint16_t code = wire::detail::load_u16_be(control_.data());
        if (!valid_close_code(code)) {
            fail(close_protocol_error, "close code not allowed on the wire");
            return;
        }
        if (!detail::valid_utf8(control_.data() + 2, control_size_ - 2)) {
            fail(close_invalid_payload, "close reason is not UTF-8");
            return;
        }
        stop(Event::close, code);
    }

    void stop(Event event, std::uint16_t status) noexcept {
        event_ = event;
        status_ = status;
        message_ = Payload();  // nothing more will be delivered
        in_message_ = false;
    }

    bool fail(std::uint16_t status, const char* text) noexcept {
        error_text_ = text;
        stop(Event::error, status);
        return false;
    }

    Role role_;
    std::size_t max_;
    mesh::detail::BufferPool* pool_ = nullptr;

    State state_ = State::header;
    Event event_ = Event::none;
    std::array<std::uint8_t, max_header_size> header_{};
    std::size_t header_have_ = 0;
    std::size_t length_end_ = 2;  // header bytes up to the end of the length
    std::size_t header_end_ = 2;  // header bytes in all, mask key included
    bool fin_ = false;
    bool masked_ = false;
    bool control_frame_ = false;
    bool in_message_ = false;  // a binary frame began a message its last fragment has not ended
    Opcode opcode_ = Opcode::continuation;
    std::array<std::uint8_t, 4> mask_{};
    std::size_t frame_length_ = 0;
    std::size_t frame_have_ = 0;

    Payload message_;  // the message reassembled so far, unmasked
    std::array<std::uint8_t, max_control_payload> control_{};
    std::size_t control_size_ = 0;
    std::uint16_t status_ = 0;
    const char* error_text_ = "";  // static text: the decoder stays safe to move
};

} // namespace ws
} // namespace wire
MESH_NAMESPACE_END
