#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/socket_io.hpp"
#include "mesh/transport/stream/connection.hpp"
#include "mesh/transport/stream/handshake.hpp"
#include "mesh/transport/stream/options.hpp"

#include <asio/error.hpp>
#include <asio/io_context.hpp>

#include <cerrno>
#include <chrono>
#include <memory>
#include <utility>

#include <sys/socket.h>

MESH_NAMESPACE_BEGIN
namespace detail {

// Opens the socket and connects it, waiting at most `timeout`. Not socket.connect():
// Asio's synchronous connect waits without a limit even on a non-blocking socket.
template <class Socket, class Endpoint>
std::error_code connect_socket(Socket& socket, const Endpoint& target, std::chrono::milliseconds timeout) {
    std::error_code ec;
    socket.open(target.protocol(), ec);
    if (ec) return ec;
    socket.non_blocking(true, ec);
    if (ec) return ec;
    if (::connect(socket.native_handle(), target.data(), static_cast<socklen_t>(target.size())) != 0)
        ec = os_error(errno);
    if (ec == asio::error::in_progress || ec == asio::error::interrupted || ec == asio::error::try_again) {
        if ((ec = wait_ready(socket.native_handle(), POLLOUT, clock::now() + timeout))) return ec;
        int error = 0;
        socklen_t length = sizeof(error);
        ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_ERROR, &error, &length);
        ec = error ? os_error(error) : std::error_code();
    }
    if (ec == asio::error::connection_refused || ec == os_error(ENOENT)) return errc::connection_refused;
    return ec;
}

// Connects, runs the session's and the version handshakes within the timeouts,
// and wraps the result: the connecting half of every stream transport.
template <class Naming, class Protocol, class Session>
StreamConnection<Protocol, Session> dial(const std::shared_ptr<asio::io_context>& home,
                                          const typename Protocol::endpoint& target, Session session,
                                          const StreamOptions& options, std::error_code& ec) {
    typename Protocol::socket socket(*home);
    if ((ec = connect_socket(socket, target, options.connect_timeout))) {
        note_failure("in the socket connect");
        return {};
    }
    Naming::tune(socket, options);
    if ((ec = session.attach(socket.native_handle()))) return {};
    if ((ec = run_handshake(socket, session, Role::connector, clock::now() + options.handshake_timeout))) return {};
    auto local = Naming::local(socket);
    auto remote = Naming::remote(socket);
    return StreamConnection<Protocol, Session>(home, std::move(socket), std::move(session), std::move(local),
                                               std::move(remote), options);
}

} // namespace detail
MESH_NAMESPACE_END
