#pragma once

#include "mesh/version.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <utility>

#include "mesh/detail/buffer_pool.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/wire/frame_header.hpp"

MESH_NAMESPACE_BEGIN
namespace wire {

/// Incremental frame decoder. Unlike Splinter's reader it keeps partial headers across calls, so
/// input may be split at any byte, and it never trusts an announced length above max_payload.
class FrameDecoder {
public:
    /// Refuses frames that announce more than `max_payload` bytes (message_too_large).
    explicit FrameDecoder(std::size_t max_payload) noexcept : max_payload_(max_payload) {}

    /// The largest payload accepted.
    std::size_t max_payload() const noexcept { return max_payload_; }
    /// Lowers the maximum (a mesh may allow less than its transport); never raises it.
    void limit(std::size_t max_payload) noexcept {
        if (max_payload < max_payload_) max_payload_ = max_payload;
    }

    /// Consumes bytes until one frame is complete or the input ends; returns how many bytes it used.
    /// Consumes nothing while ready(). A bad header sets ec and the error sticks until reset():
    /// after a corrupt header the stream position is meaningless, so nothing more can be decoded.
    std::size_t consume(const std::uint8_t* data, std::size_t size, std::error_code& ec) {
        if (error_) {
            ec = error_;
            return 0;
        }
        ec.clear();
        std::size_t used = 0;
        if (state_ == state::header) {
            const std::size_t n = std::min(header_size - header_have_, size);
            if (n != 0) std::memcpy(header_.data() + header_have_, data, n);
            header_have_ += n;
            used = n;
            if (header_have_ < header_size) return used;
            if (!start_body()) {
                ec = error_;
                return used;
            }
        }
        if (state_ == state::body && used < size) {
            const std::size_t n = std::min(body_missing(), size - used);
            append_body(data + used, n);
            used += n;
        }
        return used;
    }

    /// True when a whole frame is decoded and waits for take().
    bool ready() const noexcept { return state_ == state::ready; }

    /// Moves the finished frame out; returns an empty payload if none is ready.
    Payload take() noexcept {
        Payload out;
        take_into(out);
        return out;
    }

    /// Moves the finished frame into `out` (one move, where take() makes two); false,
    /// with `out` untouched, if none is ready. A moved-from payload is empty.
    bool take_into(Payload& out) noexcept {
        if (state_ != state::ready) return false;
        out = std::move(payload_);
        start_header();
        return true;
    }

    /// Lets the reader tell a clean end of stream (false) from one that cut a frame short (true).
    bool mid_frame() const noexcept {
        return state_ == state::body || (state_ == state::header && header_have_ != 0);
    }

    /// Zero-copy path: a socket reader may write the body straight into the payload,
    /// at most body_room() bytes at body_tail(), then report them with body_filled().
    /// The payload grows with what arrives (the room is bounded by what is already
    /// there, or a 64 KiB step), never to an announced length that may never come.
    /// Null unless a body is being read.
    std::uint8_t* body_tail() {
        if (state_ != state::body) return nullptr;
        payload_.resize(body_have_ + body_room());
        return payload_.data() + body_have_;
    }

    /// How many bytes may be written at body_tail() (see there).
    std::size_t body_room() const noexcept {
        return std::min(body_missing(), std::max(growth_step, body_have_));
    }

    /// The body bytes still to come; 0 unless a body is being read.
    std::size_t body_missing() const noexcept {
        return state_ == state::body ? body_length_ - body_have_ : 0;
    }

    /// Reports `n` bytes written at body_tail(); the frame is ready() once its body is whole.
    void body_filled(std::size_t n) noexcept {
        if (state_ != state::body) return;
        body_have_ += std::min(n, body_missing());
        payload_.resize(body_have_);  // gives up what the read did not fill; never reallocates
        if (body_have_ == body_length_) state_ = state::ready;
    }

    /// Bodies above the inline size start on a buffer taken from `pool` when it has
    /// one (nullptr: none); the pool must outlive its use here.
    void use_pool(mesh::detail::BufferPool* pool) noexcept { pool_ = pool; }

    /// Heap bytes the partial frame holds now: bounded by twice what arrived plus 64 KiB.
    std::size_t held_bytes() const noexcept { return payload_.heap_capacity(); }

    /// Drops a partial frame and its memory; the decoder starts again at a header.
    void reset() noexcept {
        payload_ = Payload();
        error_.clear();
        start_header();
    }

private:
    enum class state : std::uint8_t { header, body, ready };

    void start_header() noexcept {
        state_ = state::header;
        header_have_ = 0;
        body_length_ = 0;
        body_have_ = 0;
    }

    bool start_body() {
        std::uint32_t length = 0;
        error_ = parse_header(header_.data(), max_payload_, length);
        if (error_) return false;
        payload_ = Payload();
        if (pool_ && length > Payload::inline_capacity) pool_->take(payload_);
        body_length_ = length;
        body_have_ = 0;
        state_ = length == 0 ? state::ready : state::body;
        return true;
    }

    // Outside body_tail() ... body_filled() the payload holds exactly the body so far.
    void append_body(const std::uint8_t* data, std::size_t n) {
        if (n == 0) return;
        // Room for twice what has arrived, never more than the body: a body that comes
        // in two pieces (a 64 KiB frame across two reads) is allocated once, not twice.
        const std::size_t have = body_have_ + n;
        if (body_length_ > Payload::inline_capacity && payload_.heap_capacity() < have)
            mesh::detail::PayloadStorage::reserve(payload_, std::min(body_length_, 2 * have));
        payload_.append(data, n);
        body_have_ += n;
        if (body_have_ == body_length_) state_ = state::ready;
    }

    static constexpr std::size_t growth_step = 64 * 1024;

    mesh::detail::BufferPool* pool_ = nullptr;

    std::size_t max_payload_;
    std::array<std::uint8_t, header_size> header_{};
    std::size_t header_have_ = 0;
    std::size_t body_length_ = 0;
    std::size_t body_have_ = 0;
    state state_ = state::header;
    std::error_code error_;
    Payload payload_;
};

} // namespace wire
MESH_NAMESPACE_END
