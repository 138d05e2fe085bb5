#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <utility>

#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/wire/frame_header.hpp"

namespace mesh::wire {

// Incremental frame decoder. Unlike Splinter's reader it keeps partial headers across calls, so
// input may be split at any byte, and it never trusts an announced length above max_payload.
class FrameDecoder {
public:
    explicit FrameDecoder(std::size_t max_payload) noexcept : max_payload_(max_payload) {}

    std::size_t max_payload() const noexcept { return max_payload_; }
    // Lowers the maximum (a mesh may allow less than its transport); never raises it.
    void limit(std::size_t max_payload) noexcept {
        if (max_payload < max_payload_) max_payload_ = max_payload;
    }

    // Consumes bytes until one frame is complete or the input ends; returns how many bytes it used.
    // Consumes nothing while ready(). A bad header sets ec and the error sticks until reset():
    // after a corrupt header the stream position is meaningless, so nothing more can be decoded.
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

    bool ready() const noexcept { return state_ == state::ready; }

    // Moves the finished frame out; returns an empty payload if none is ready.
    Payload take() noexcept {
        if (state_ != state::ready) return {};
        Payload out = std::move(payload_);
        payload_ = Payload();
        start_header();
        return out;
    }

    // Lets the reader tell a clean end of stream (false) from one that cut a frame short (true).
    bool mid_frame() const noexcept {
        return state_ == state::body || (state_ == state::header && header_have_ != 0);
    }

    // Zero-copy path: large bodies can be read from the socket straight into the payload.
    std::uint8_t* body_tail() noexcept {
        if (state_ != state::body) return nullptr;
        // Capacity was reserved when the header validated, so this never allocates.
        if (payload_.size() != body_length_) payload_.resize(body_length_);
        return payload_.data() + body_have_;
    }

    std::size_t body_missing() const noexcept {
        return state_ == state::body ? body_length_ - body_have_ : 0;
    }

    void body_filled(std::size_t n) noexcept {
        if (state_ != state::body) return;
        if (payload_.size() != body_length_) payload_.resize(body_length_);
        body_have_ += std::min(n, body_missing());
        if (body_have_ == body_length_) state_ = state::ready;
    }

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
        // Reserve rather than resize: a peer that announces a big frame and then stalls costs
        // address space, not touched memory.
        Payload fresh;
        fresh.reserve(length);
        payload_ = std::move(fresh);
        body_length_ = length;
        body_have_ = 0;
        state_ = length == 0 ? state::ready : state::body;
        return true;
    }

    // The payload is either grown by appending (consume only) or was sized in full by body_tail();
    // both keep one bulk copy per call.
    void append_body(const std::uint8_t* data, std::size_t n) {
        if (n == 0) return;
        if (payload_.size() == body_have_)
            payload_.insert(payload_.end(), data, data + n);
        else
            std::memcpy(payload_.data() + body_have_, data, n);
        body_have_ += n;
        if (body_have_ == body_length_) state_ = state::ready;
    }

    std::size_t max_payload_;
    std::array<std::uint8_t, header_size> header_{};
    std::size_t header_have_ = 0;
    std::size_t body_length_ = 0;
    std::size_t body_have_ = 0;
    state state_ = state::header;
    std::error_code error_;
    Payload payload_;
};

} // namespace mesh::wire
