#pragma once

#include "mesh/error.hpp"
#include "mesh/transport/socket_io.hpp"
#include "mesh/wire/handshake.hpp"

#include <asio/buffer.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

namespace mesh::detail {

// A failure to finish the version handshake because the peer went away is a
// handshake failure, not an I/O error of an established connection.
inline std::error_code handshake_error(const std::error_code& ec) {
    if (ec == errc::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::broken_pipe)
        return errc::handshake_failed;
    return ec;
}

// Connecting side: sends the version range, reads the chosen version.
template <class Socket>
std::error_code connector_handshake(Socket& socket, clock::time_point deadline) {
    const auto hello = wire::make_hello();
    if (auto ec = write_all_until(socket, {asio::buffer(hello)}, deadline)) return handshake_error(ec);
    std::array<std::uint8_t, wire::reply_size> reply{};
    if (auto ec = read_exact_until(socket, reply.data(), reply.size(), deadline)) return handshake_error(ec);
    return wire::check_reply(reply.data());
}

// Listening side: reads the version range, answers; on a refusal it has written
// 00 00 and the caller closes the socket.
template <class Socket>
std::error_code listener_handshake(Socket& socket, clock::time_point deadline) {
    std::array<std::uint8_t, wire::hello_size> hello{};
    if (auto ec = read_exact_until(socket, hello.data(), hello.size(), deadline)) return handshake_error(ec);
    std::error_code refused;
    const auto reply = wire::make_reply(hello.data(), refused);
    if (auto ec = write_all_until(socket, {asio::buffer(reply)}, deadline)) return handshake_error(ec);
    return refused;
}

// Lets a listener abort the handshakes it still has running when it closes.
class HandshakeAbort {
public:
    virtual void abort() = 0;

protected:
    ~HandshakeAbort() = default;
};

// The listening side of the handshake on the reactor, bounded by a deadline, so a
// silent client holds up nobody. handler(this, error_code, Socket&&) runs once.
template <class Socket, class Handler>
class AsyncListenerHandshake final : public HandshakeAbort,
                                     public std::enable_shared_from_this<AsyncListenerHandshake<Socket, Handler>> {
public:
    AsyncListenerHandshake(Socket socket, Handler handler)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), handler_(std::move(handler)) {}

    void start(clock::duration timeout) {
        auto self = this->shared_from_this();
        timer_.expires_after(timeout);
        timer_.async_wait([self](std::error_code ec) {
            if (!ec) self->abort();  // deadline passed: the pending read fails
        });
        asio::async_read(socket_, asio::buffer(hello_), [self](std::error_code ec, std::size_t) {
            if (ec) return self->finish(handshake_error(ec == asio::error::operation_aborted ? make_error_code(errc::timeout) : ec));
            std::error_code refused;
            self->reply_ = wire::make_reply(self->hello_.data(), refused);
            asio::async_write(self->socket_, asio::buffer(self->reply_),
                              [self, refused](std::error_code write_ec, std::size_t) {
                                  self->finish(write_ec ? handshake_error(write_ec) : refused);
                              });
        });
    }

    // Closes the socket: used on timeout and when the listener closes.
    void abort() override {
        std::error_code ignored;
        socket_.close(ignored);
    }

private:
    void finish(std::error_code ec) {
        if (done_) return;
        done_ = true;
        timer_.cancel();
        handler_(this, ec, std::move(socket_));
    }

    Socket socket_;
    asio::steady_timer timer_;
    Handler handler_;
    std::array<std::uint8_t, wire::hello_size> hello_{};
    std::array<std::uint8_t, wire::reply_size> reply_{};
    bool done_ = false;
};

} // namespace mesh::detail
