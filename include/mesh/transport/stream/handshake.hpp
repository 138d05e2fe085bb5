#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/plain_session.hpp"
#include "mesh/transport/stream/socket_io.hpp"
#include "mesh/wire/handshake.hpp"

#include <asio/buffer.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A peer that goes away during a handshake makes it fail; that is not an I/O
// error of an established connection.
inline std::error_code handshake_error(const std::error_code& ec) {
    if (ec == errc::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::broken_pipe)
        return errc::handshake_failed;
    return ec;
}

enum class Role { connector, listener };

// Everything between the socket connect or accept and the first frame: the
// session's own handshake (TLS), then the version handshake inside it. Non-blocking:
// step() goes as far as the socket allows and returns would_block when it must
// wait for events(); the callers below wait with a deadline.
template <class Session>
class StreamHandshake {
public:
    explicit StreamHandshake(Role role) : role_(role) {}

    template <class Socket>
    [[nodiscard]] std::error_code step(Socket& socket, Session& session) {
        for (;;) {
            std::error_code ec;
            switch (phase_) {
            case Phase::secure:
                if ((ec = session.handshake(socket))) return wait_or_fail(ec, POLLIN);
                phase_ = role_ == Role::connector ? Phase::send : Phase::receive;
                if (role_ == Role::connector) out_ = wire::make_hello();
                break;
            case Phase::send: {
                const std::size_t size = role_ == Role::connector ? wire::hello_size : wire::reply_size;
                sent_ += session.write_some(socket, asio::buffer(out_.data() + sent_, size - sent_), ec);
                if (ec) return wait_or_fail(ec, POLLOUT);
                if (sent_ < size) break;
                if ((ec = session.flush())) return wait_or_fail(ec, POLLOUT);  // all of it on the wire
                if (role_ == Role::listener) {
                    phase_ = Phase::done;
                    return refused_;
                }
                phase_ = Phase::receive;
                break;
            }
            case Phase::receive: {
                const std::size_t size = role_ == Role::connector ? wire::reply_size : wire::hello_size;
                const std::size_t n = session.read_some(socket, asio::buffer(in_.data() + got_, size - got_), ec);
                got_ += n;
                if (ec) return wait_or_fail(ec, POLLIN);
                if (n == 0) return handshake_error(errc::end_of_stream);
                if (got_ < size) break;
                if (role_ == Role::connector) {
                    phase_ = Phase::done;
                    return wire::check_reply(in_.data());
                }
                const auto reply = wire::make_reply(in_.data(), refused_);
                out_ = {reply[0], reply[1], 0, 0};  // a refusal still answers 00 00, as Splinter does
                phase_ = Phase::send;
                break;
            }
            case Phase::done: return {};
            }
        }
    }

    // What to wait for after would_block.
    short events() const noexcept { return events_; }

    // Where it is, in words, for an error message. Only a TLS session's own
    // handshake can fail before the version handshake begins.
    const char* stage() const noexcept {
        return phase_ == Phase::secure ? "in the TLS handshake" : "in the version handshake";
    }

private:
    enum class Phase { secure, send, receive, done };

    [[nodiscard]] std::error_code wait_or_fail(const std::error_code& ec, short events) {
        if (!would_block(ec)) return handshake_error(ec);
        events_ = events;
        return ec;
    }

    Role role_;
    Phase phase_ = Phase::secure;
    std::array<std::uint8_t, wire::hello_size> out_{}, in_{};
    std::size_t sent_ = 0, got_ = 0;
    std::error_code refused_;
    short events_ = POLLIN;
};

// Runs the whole handshake, blocking until done or the deadline.
template <class Socket, class Session>
std::error_code run_handshake(Socket& socket, Session& session, Role role, clock::time_point deadline) {
    StreamHandshake<Session> handshake(role);
    for (;;) {
        auto ec = handshake.step(socket, session);
        if (!would_block(ec)) {
            if (ec) note_failure(handshake.stage());
            return ec;
        }
        if ((ec = wait_ready(socket.native_handle(), session.wants(handshake.events()), deadline)))
            return note_failure(handshake.stage()), ec;
    }
}

// Lets a listener abort the handshakes it still has running when it closes.
class HandshakeAbort {
public:
    virtual void abort() = 0;

protected:
    ~HandshakeAbort() = default;
};

// The listening side on the reactor, bounded by a deadline, so a silent client
// holds up nobody. The session is made only once the client has sent something,
// so sockets that never speak cost no TLS state. handler(this, error_code,
// Socket&&, Session&&) runs once.
template <class Socket, class Security, class Handler>
class AsyncListenerHandshake final
    : public HandshakeAbort,
      public std::enable_shared_from_this<AsyncListenerHandshake<Socket, Security, Handler>> {
public:
    using Session = typename Security::session_type;

    AsyncListenerHandshake(Socket socket, const Security& security, Handler handler)
        : socket_(std::move(socket)), security_(security), timer_(socket_.get_executor()),
          handler_(std::move(handler)) {}

    void start(clock::duration timeout) {
        auto self = this->shared_from_this();
        timer_.expires_after(timeout);
        timer_.async_wait([self](std::error_code ec) {
            if (!ec) {
                self->timed_out_ = true;
                self->abort();  // the pending wait fails
            }
        });
        wait(POLLIN);
    }

    // Closes the socket: used on timeout and when the listener closes.
    void abort() override {
        std::error_code ignored;
        socket_.close(ignored);
    }

private:
    void wait(short events) {
        auto self = this->shared_from_this();
        socket_.async_wait(wait_type_for(events), [self](std::error_code ec) {
            if (ec) return self->finish(self->timed_out_ ? make_error_code(errc::timeout) : ec);
            self->advance();
        });
    }

    void advance() {
        std::error_code ec;
        if (!session_) {
            session_.emplace(security_.server_session(socket_.native_handle(), ec));
            if (ec) return finish(ec);
        }
        ec = handshake_.step(socket_, *session_);
        if (would_block(ec)) return wait(session_->wants(handshake_.events()));
        finish(ec);
    }

    void finish(std::error_code ec) {
        if (done_) return;
        done_ = true;
        timer_.cancel();
        if (!session_) session_.emplace();
        handler_(this, ec, std::move(socket_), std::move(*session_));
    }

    Socket socket_;
    Security security_;
    asio::steady_timer timer_;
    Handler handler_;
    std::optional<Session> session_;
    StreamHandshake<Session> handshake_{Role::listener};
    bool timed_out_ = false;
    bool done_ = false;
};

} // namespace detail
MESH_NAMESPACE_END
