#pragma once

#include "mesh/version.hpp"

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/socket_base.hpp>

#include <cstddef>
#include <system_error>

#include <poll.h>

MESH_NAMESPACE_BEGIN
namespace detail {

// The byte channel of a stream connection without encryption: reads and writes go
// straight to the non-blocking socket. TlsSession offers the same members.
class PlainSession {
public:
    // TLS peers need frame-aligned records (see TlsSession); plain sockets take any split.
    static constexpr bool frame_per_write = false;

    // Binds the session to the connected descriptor.
    [[nodiscard]] std::error_code attach(int /*fd*/) noexcept { return {}; }

    // Nothing to negotiate below the version handshake.
    template <class Socket>
    [[nodiscard]] std::error_code handshake(Socket&) noexcept {
        return {};
    }

    template <class Socket>
    std::size_t read_some(Socket& socket, asio::mutable_buffer buffer, std::error_code& ec) {
        return socket.read_some(buffer, ec);
    }

    template <class Socket, class Buffers>
    std::size_t write_some(Socket& socket, const Buffers& buffers, std::error_code& ec) {
        return socket.write_some(buffers, ec);
    }

    // Nothing is ever held back: writes go to the socket, reads come from it.
    [[nodiscard]] std::error_code flush() noexcept { return {}; }
    bool has_pending() const noexcept { return false; }

    // After would_block: the poll events to wait for. A socket waits for what it asked.
    short wants(short events) const noexcept { return events; }

    template <class Socket>
    void close(Socket&) noexcept {}
};

// Makes the sessions of a listener's accepted connections.
struct PlainSecurity {
    using session_type = PlainSession;
    PlainSession server_session(int /*fd*/, std::error_code& ec) const noexcept {
        ec.clear();
        return {};
    }
};

inline asio::socket_base::wait_type wait_type_for(short events) noexcept {
    return (events & POLLOUT) ? asio::socket_base::wait_write : asio::socket_base::wait_read;
}

inline bool would_block(const std::error_code& ec) noexcept {
    return ec == asio::error::would_block || ec == asio::error::try_again;
}

} // namespace detail
MESH_NAMESPACE_END
