#pragma once

#include "mesh/version.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/plain_session.hpp"

#include <asio/buffer.hpp>
#include <asio/error.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <vector>

#include <poll.h>

MESH_NAMESPACE_BEGIN
namespace detail {

using clock = std::chrono::steady_clock;

// An errno value as Asio reports socket errors, so that every transport's errors
// compare equal to asio::error::connection_reset and the like.
inline std::error_code os_error(int value) { return {value, asio::error::get_system_category()}; }

// Waits until the descriptor is ready for `events` (POLLIN/POLLOUT) or the deadline passes.
inline std::error_code wait_ready(int fd, short events, clock::time_point deadline) {
    for (;;) {
        int timeout_ms = -1;
        if (deadline != clock::time_point::max()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0) return errc::timeout;
            timeout_ms = static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count() + 1, 1 << 30));
        }
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, timeout_ms);
        if (n > 0) return {};
        if (n < 0 && errno != EINTR) return os_error(errno);
    }
}

// Writes everything before the deadline through a session over a non-blocking
// socket, so a stalled peer can never hold the caller past it.
template <class Socket, class Session>
std::error_code write_all_until(Socket& socket, Session& session, std::vector<asio::const_buffer> buffers,
                                clock::time_point deadline) {
    std::size_t first = 0;
    for (;;) {
        while (first < buffers.size() && buffers[first].size() == 0) ++first;
        std::error_code ec;
        if (first == buffers.size()) {
            if (!would_block(ec = session.flush())) return ec;
            if ((ec = wait_ready(socket.native_handle(), session.wants(POLLOUT), deadline))) return ec;
            continue;
        }
        std::size_t n = session.write_some(
            socket, std::vector<asio::const_buffer>(buffers.begin() + static_cast<std::ptrdiff_t>(first), buffers.end()),
            ec);
        for (; n > 0; ++first) {
            const std::size_t used = std::min(n, buffers[first].size());
            buffers[first] += used;
            n -= used;
            if (buffers[first].size() != 0) break;
        }
        if (would_block(ec)) {
            if ((ec = wait_ready(socket.native_handle(), session.wants(POLLOUT), deadline))) return ec;
        } else if (ec) {
            return ec;
        }
    }
}

} // namespace detail
MESH_NAMESPACE_END
