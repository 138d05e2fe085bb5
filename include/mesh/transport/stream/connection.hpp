#pragma once

#include "mesh/version.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/options.hpp"
#include "mesh/transport/stream/plain_session.hpp"
#include "mesh/transport/stream/socket_io.hpp"
#include "mesh/wire/frame_decoder.hpp"
#include "mesh/wire/frame_header.hpp"

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

MESH_NAMESPACE_BEGIN

namespace detail {

// A view of our own buffer vector, so that async_write does not copy the vector.
struct BufferSpan {
    const asio::const_buffer* first;
    const asio::const_buffer* last;
    const asio::const_buffer* begin() const noexcept { return first; }
    const asio::const_buffer* end() const noexcept { return last; }
};

} // namespace detail

/// One framed connection over a stream socket (TCP or Unix, plain or TLS):
/// Splinter's v1 frames, read and written in batches. Used on its own it offers
/// blocking send and recv; added to a Mesh, the reactor drives it through attach ...
/// detach. All bytes pass through the Session (PlainSession or TlsSession).
template <class Protocol, class Session = detail::PlainSession>
class StreamConnection {
public:
    using protocol_type = Protocol;                 ///< the Protocol parameter (TCP or Unix stream)
    using socket_type = typename Protocol::socket;  ///< the Protocol's socket
    using session_type = Session;                   ///< the Session parameter

    /// Frames up to this size are copied into one contiguous write buffer; larger
    /// payloads go out as their own gather buffer, without a copy.
    static constexpr std::size_t copy_limit = 16 * 1024;
    /// A write batch takes queued messages until it holds this many bytes or more.
    static constexpr std::size_t batch_bytes = 256 * 1024;
    /// The read buffer's size; idle connections hold no read buffer.
    static constexpr std::size_t read_buffer_size = 64 * 1024;

    /// Not open.
    StreamConnection() = default;
    /// Wraps a connected `socket` and its `session`, handshakes done (a transport's
    /// connect or a listener's accept makes it), with the transport's `options` (the
    /// maximum message size, the frame timeout).
    StreamConnection(std::shared_ptr<asio::io_context> home, socket_type socket, Session session,
                     std::string local_endpoint, std::string remote_endpoint, const StreamOptions& options)
        : home_(std::move(home)), socket_(std::move(socket)), session_(std::move(session)),
          local_(std::move(local_endpoint)), remote_(std::move(remote_endpoint)),
          decoder_(options.max_message_size), frame_timeout_(options.frame_timeout),
          read_idle_timeout_(options.read_idle_timeout), write_stall_timeout_(options.write_stall_timeout) {
        // Always non-blocking: standalone calls wait with poll() and a deadline instead.
        std::error_code ignored;
        socket_->non_blocking(true, ignored);
    }

    /// Moves the connection.
    StreamConnection(StreamConnection&&) = default;
    /// Moves the connection.
    StreamConnection& operator=(StreamConnection&&) = default;

    /// True while the socket is open.
    bool is_open() const noexcept { return socket_ && socket_->is_open(); }
    /// The peer's endpoint, as the transport names it ("tcp://127.0.0.1:5000").
    /// Captured when the connection was made, so it never fails later.
    const std::string& remote_endpoint() const noexcept { return remote_; }
    /// This end's endpoint, captured with remote_endpoint, so it never fails later either.
    const std::string& local_endpoint() const noexcept { return local_; }
    /// The socket (a connection that is not open may have none: check is_open first).
    socket_type& socket() noexcept { return *socket_; }
    /// The TLS session, for its peer identity; nothing to see in a plain one.
    const Session& session() const noexcept { return session_; }

    /// Writes one frame (header and payload in one gather write), blocking.
    /// Errors include not_connected and message_too_large.
    [[nodiscard]] std::error_code send(const Payload& payload) {
        if (!is_open()) return errc::not_connected;
        if (payload.size() > decoder_.max_payload()) return errc::message_too_large;
        std::array<std::uint8_t, wire::header_size> header;
        wire::write_header(header.data(), static_cast<std::uint32_t>(payload.size()));
        auto ec = detail::write_all_until(*socket_, session_,
                                          {asio::buffer(unsent_), asio::buffer(header), asio::buffer(payload.data(), payload.size())},
                                          detail::clock::time_point::max());
        if (!ec) unsent_.clear();
        return ec;
    }

    /// Blocks until a whole frame arrived; end_of_stream when the peer closed
    /// between frames, truncated_frame when it closed inside one.
    [[nodiscard]] std::error_code recv(Payload& out) { return recv_until(out, detail::clock::time_point::max()); }
    /// As recv, waiting at most `timeout`: errc::timeout when no whole frame came.
    [[nodiscard]] std::error_code recv_for(Payload& out, std::chrono::steady_clock::duration timeout) {
        return recv_until(out, detail::clock::now() + timeout);
    }

    /// Ends the session (a TLS close_notify), shuts both directions down and closes.
    /// The read and write buffers, and any partial frame, are released with it.
    /// not_connected when it was not open.
    std::error_code disconnect() {
        if (!is_open()) return errc::not_connected;
        session_.close(*socket_);
        std::error_code ignored;
        socket_->shutdown(socket_type::shutdown_both, ignored);
        socket_->close(ignored);
        release_buffers();
        return {};
    }

    /// Heap bytes the connection holds for input and output now (not counting its session).
    std::size_t buffered_bytes() const noexcept {
        return (in_ ? read_buffer_size : 0) + decoder_.held_bytes() + unsent_.capacity() + out_.capacity() +
               held_.capacity() * sizeof(Payload) + bounds_.capacity() * sizeof(Bound) +
               buffers_.capacity() * sizeof(asio::const_buffer);
    }

    // ---- Driven by a Mesh's reactor (one thread) between attach and detach ----

    /// Hands the connection to a Mesh's reactor: its socket is served by `io` from now
    /// on, and payloads above `max_message_size` are refused (the limit only goes down).
    void attach(asio::io_context& io, std::size_t max_message_size) {
        if (&socket_->get_executor().context() != &io) rebind(io);
        decoder_.limit(max_message_size);
    }

    /// True when a frame the peer began is unfinished (after try_take took all there is).
    bool frame_unfinished() const noexcept { return decoder_.mid_frame(); }
    /// How long a frame may stay unfinished while a Mesh reads (StreamOptions::frame_timeout; 0: no limit).
    std::chrono::milliseconds frame_timeout() const noexcept { return frame_timeout_; }
    /// How long a Mesh lets it receive nothing (StreamOptions::read_idle_timeout; 0: no limit).
    std::chrono::milliseconds read_idle_timeout() const noexcept { return read_idle_timeout_; }
    /// How long a Mesh lets one write make no progress (StreamOptions::write_stall_timeout; 0: no limit).
    std::chrono::milliseconds write_stall_timeout() const noexcept { return write_stall_timeout_; }
    /// Bytes handed to the socket (or the TLS session) by asynchronous writes so far.
    std::uint64_t bytes_written() const noexcept { return written_; }
    /// Bytes read from the socket (or the TLS session) so far.
    std::uint64_t bytes_read() const noexcept { return read_; }

    /// Decodes payloads above the inline size into buffers taken from `pool` (a
    /// Mesh's spare buffers) until detach.
    void use_pool(detail::BufferPool* pool) noexcept { decoder_.use_pool(pool); }

    /// Gives back a message that was read but not delivered: the next take returns it.
    void unread(Payload&& payload) { unread_.emplace(std::move(payload)); }

    /// Takes the next whole frame already read, if there is one. Never reads the
    /// socket (async_fill does); false with `ec` set once the stream has ended
    /// (end_of_stream, truncated_frame) or failed, false with `ec` empty otherwise.
    bool try_take(Payload& out, std::error_code& ec) {
        if (unread_) {
            out = std::move(*unread_);
            unread_.reset();
            return true;
        }
        for (;;) {
            if (decoder_.take_into(out)) return true;
            if (in_begin_ == in_end_) break;
            in_begin_ += decoder_.consume(in_.get() + in_begin_, in_end_ - in_begin_, ec);
            if (ec) return false;
        }
        in_begin_ = in_end_ = 0;
        if (eof_) ec = decoder_.mid_frame() ? make_error_code(errc::truncated_frame) : make_error_code(errc::end_of_stream);
        else if (read_error_) ec = read_error_;
        return false;
    }

    /// Reads what the socket has now; if nothing, waits for it to become readable.
    /// Then handler(error_code) runs on the reactor and try_take has more to give.
    template <class Handler>
    void async_fill(Handler&& handler) {
        std::error_code ec;
        if (read_now(ec) > 0 || eof_ || read_error_) {
            asio::post(socket_->get_executor(), [h = std::forward<Handler>(handler)]() mutable { h(std::error_code()); });
            return;
        }
        if (in_begin_ == in_end_) in_.reset();  // idle connections hold no read buffer
        socket_->async_wait(detail::wait_type_for(session_.wants(POLLIN)),
                            [this, h = std::forward<Handler>(handler)](std::error_code wait_ec) mutable {
                                std::error_code ignored;
                                if (!wait_ec) read_now(ignored);
                                h(wait_ec);
                            });
    }

    /// Encodes as many queued messages as fit a batch and writes them with gather
    /// writes; handler(error_code, messages, payload bytes) follows. take(encode) calls
    /// encode on the next queued payload and returns false when none is left.
    template <class Take, class Handler>
    void async_write_batch(Take&& take, Handler&& handler) {
        out_.clear();
        held_.clear();
        bounds_.clear();
        if (!unsent_.empty()) {
            out_.swap(unsent_);
            if constexpr (Session::frame_per_write) bounds_.push_back({out_.size(), no_payload});
        }
        std::size_t messages = 0, bytes = 0, batch = 0;
        // take(encode) calls encode on the next queued payload where it lies (false when
        // none is): small ones are copied into the batch, large ones moved out and held.
        const auto encode = [&](Payload& payload) {
            ++messages;
            batch += wire::header_size + payload.size();
            std::array<std::uint8_t, wire::header_size> header;
            wire::write_header(header.data(), static_cast<std::uint32_t>(payload.size()));
            out_.insert(out_.end(), header.begin(), header.end());
            bytes += payload.size();
            if (payload.size() <= copy_limit) {
                out_.insert(out_.end(), payload.begin(), payload.end());
                if constexpr (Session::frame_per_write) bounds_.push_back({out_.size(), no_payload});
            } else {
                bounds_.push_back({out_.size(), held_.size()});
                held_.push_back(std::move(payload));
            }
        };
        while (batch < batch_bytes && take(encode)) {
        }
        buffers_.clear();
        std::size_t from = 0;
        for (const auto& bound : bounds_) {
            if (bound.offset > from) buffers_.push_back(asio::buffer(out_.data() + from, bound.offset - from));
            if (bound.payload != no_payload) buffers_.push_back(asio::buffer(held_[bound.payload].data(), held_[bound.payload].size()));
            from = bound.offset;
        }
        if (out_.size() > from) buffers_.push_back(asio::buffer(out_.data() + from, out_.size() - from));
        first_ = 0;
        write_more(Written<std::decay_t<Handler>>{std::forward<Handler>(handler), messages, bytes}, true);
    }

    /// Cancels the pending asynchronous operations: they complete with operation_aborted.
    void cancel() {
        std::error_code ignored;
        if (socket_) socket_->cancel(ignored);
    }

    /// Back to standalone use; called when no asynchronous operation is pending.
    void detach() {
        decoder_.use_pool(nullptr);
        if (!is_open()) return;
        if (home_ && &socket_->get_executor().context() != home_.get()) rebind(*home_);
    }

private:
    // Moves the open descriptor to a socket served by `io`, keeping buffered input.
    void rebind(asio::io_context& io) {
        std::error_code ec;
        const auto protocol = socket_->local_endpoint(ec).protocol();
        if (ec) return;
        const auto fd = socket_->release(ec);
        if (ec) return;
        socket_.emplace(io);
        socket_->assign(protocol, fd, ec);
        socket_->non_blocking(true, ec);
    }

    static constexpr std::size_t no_payload = ~std::size_t(0);
    struct Bound {
        std::size_t offset;   // in out_: a buffer ends here
        std::size_t payload;  // then held_[payload] follows, unless no_payload
    };

    template <class Handler>
    struct Written {
        Handler handler;
        std::size_t messages, bytes;
    };

    // Writes until done or the socket is full, then waits for it. A batch that
    // completes at once still reports through the executor, never inline.
    template <class Done>
    void write_more(Done&& done, bool initiating) {
        for (;;) {
            while (first_ < buffers_.size() && buffers_[first_].size() == 0) ++first_;
            std::error_code ec;
            const bool more = first_ < buffers_.size();
            if (more) {
                consume(session_.write_some(
                    *socket_, detail::BufferSpan{buffers_.data() + first_, buffers_.data() + buffers_.size()}, ec));
            } else {
                ec = session_.flush();  // what the session buffered must reach the socket too
            }
            if (detail::would_block(ec)) {
                socket_->async_wait(detail::wait_type_for(session_.wants(POLLOUT)),
                                    [this, d = std::forward<Done>(done)](std::error_code wait_ec) mutable {
                                        if (wait_ec) finish_write(std::move(d), wait_ec);
                                        else write_more(std::move(d), false);
                                    });
                return;
            }
            if (!ec && more) continue;
            if (!initiating) return finish_write(std::forward<Done>(done), ec);
            asio::post(socket_->get_executor(), [this, ec, d = std::forward<Done>(done)]() mutable {
                finish_write(std::move(d), ec);
            });
            return;
        }
    }

    void consume(std::size_t n) {
        written_ += n;
        for (; n > 0 && first_ < buffers_.size(); ++first_) {
            const std::size_t used = std::min(n, buffers_[first_].size());
            buffers_[first_] += used;
            n -= used;
            if (buffers_[first_].size() != 0) break;
        }
    }

    template <class Done>
    void finish_write(Done&& done, std::error_code ec) {
        if (ec == asio::error::operation_aborted) keep_unsent();  // a cancel (remove); before held_ goes
        held_.clear();
        if (out_.capacity() > batch_bytes) out_ = std::vector<std::uint8_t>();
        // A write to a peer that closed fails with EPIPE or a reset, yet what it
        // sent before closing may still wait to be read: report the end of the
        // stream, so that the mesh stops writing but keeps reading.
        if (ec == asio::error::broken_pipe || ec == asio::error::connection_reset) ec = errc::end_of_stream;
        done.handler(ec, done.messages, done.bytes);
    }

    // A cancelled write (remove) may stop inside a frame. Its unwritten bytes go out
    // first on the next write, so the peer never sees a broken stream.
    void keep_unsent() {
        std::vector<std::uint8_t> rest;
        for (std::size_t i = first_; i < buffers_.size(); ++i) {
            const auto* data = static_cast<const std::uint8_t*>(buffers_[i].data());
            rest.insert(rest.end(), data, data + buffers_[i].size());
        }
        unsent_ = std::move(rest);
    }

    void release_buffers() noexcept {
        in_.reset();
        in_begin_ = in_end_ = 0;
        decoder_.reset();
        unsent_ = {};
        out_ = {};
        held_ = {};
        bounds_ = {};
        buffers_ = {};
        first_ = 0;
    }

    // Reads what the socket has, and what the session still holds decrypted.
    std::size_t read_now(std::error_code& ec) {
        std::size_t total = 0, n = 0;
        do {
            n = read_once(ec);
            total += n;
        } while (n > 0 && session_.has_pending());
        return total;
    }

    // One non-blocking read, straight into the payload when a large body is pending.
    std::size_t read_once(std::error_code& ec) {
        if (eof_ || read_error_) return 0;
        std::size_t n = 0;
        if (in_begin_ == in_end_ && decoder_.body_missing() >= read_buffer_size) {
            std::uint8_t* tail = decoder_.body_tail();
            n = session_.read_some(*socket_, asio::buffer(tail, decoder_.body_room()), ec);
            decoder_.body_filled(n);
        } else {
            if (!in_) in_.reset(new std::uint8_t[read_buffer_size]);
            if (in_end_ == read_buffer_size) return 0;
            n = session_.read_some(*socket_, asio::buffer(in_.get() + in_end_, read_buffer_size - in_end_), ec);
            in_end_ += n;
        }
        read_ += n;
        if (ec == asio::error::eof) eof_ = true;
        else if (ec && !detail::would_block(ec)) read_error_ = ec;
        return n;
    }

    [[nodiscard]] std::error_code recv_until(Payload& out, detail::clock::time_point deadline) {
        if (!is_open() && in_begin_ == in_end_ && !unread_) return errc::not_connected;
        for (;;) {
            std::error_code ec;
            if (try_take(out, ec)) return {};
            if (ec) return ec;
            if (read_now(ec) > 0 || eof_ || read_error_) continue;
            if ((ec = detail::wait_ready(socket_->native_handle(), session_.wants(POLLIN), deadline))) return ec;
        }
    }

    std::shared_ptr<asio::io_context> home_;  // serves the socket while no mesh drives it
    std::optional<socket_type> socket_;
    Session session_;
    std::string local_, remote_;
    wire::FrameDecoder decoder_{0};
    std::chrono::milliseconds frame_timeout_{0}, read_idle_timeout_{0}, write_stall_timeout_{0};
    std::uint64_t written_ = 0, read_ = 0;

    std::unique_ptr<std::uint8_t[]> in_;
    std::size_t in_begin_ = 0, in_end_ = 0;
    bool eof_ = false;
    std::error_code read_error_;
    std::optional<Payload> unread_;
    std::vector<std::uint8_t> unsent_;  // the rest of a batch whose write was cut short

    std::vector<std::uint8_t> out_;
    std::vector<Payload> held_;
    std::vector<Bound> bounds_;
    std::vector<asio::const_buffer> buffers_;
    std::size_t first_ = 0;  // the first buffer not yet fully written
};

MESH_NAMESPACE_END
