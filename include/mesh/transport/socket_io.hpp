#pragma once

#include "mesh/error.hpp"

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

namespace mesh::detail {

using clock = std::chrono::steady_clock;

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
        if (n < 0 && errno != EINTR) return {errno, std::system_category()};
    }
}

// Blocking-with-deadline reads and writes over a socket in non-blocking mode, so a
// silent peer can never hold the caller past its deadline.
template <class Socket>
std::error_code read_exact_until(Socket& socket, std::uint8_t* data, std::size_t size, clock::time_point deadline) {
    std::size_t done = 0;
    while (done < size) {
        std::error_code ec;
        const std::size_t n = socket.read_some(asio::buffer(data + done, size - done), ec);
        done += n;
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            if ((ec = wait_ready(socket.native_handle(), POLLIN, deadline))) return ec;
        } else if (ec == asio::error::eof) {
            return errc::end_of_stream;
        } else if (ec) {
            return ec;
        }
    }
    return {};
}

template <class Socket>
std::error_code write_all_until(Socket& socket, std::vector<asio::const_buffer> buffers, clock::time_point deadline) {
    std::size_t first = 0;
    for (;;) {
        while (first < buffers.size() && buffers[first].size() == 0) ++first;
        if (first == buffers.size()) return {};
        std::error_code ec;
        std::size_t n = socket.write_some(
            std::vector<asio::const_buffer>(buffers.begin() + static_cast<std::ptrdiff_t>(first), buffers.end()), ec);
        for (; n > 0; ++first) {
            const std::size_t used = std::min(n, buffers[first].size());
            buffers[first] += used;
            n -= used;
            if (buffers[first].size() != 0) break;
        }
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            if ((ec = wait_ready(socket.native_handle(), POLLOUT, deadline))) return ec;
        } else if (ec) {
            return ec;
        }
    }
}

} // namespace mesh::detail
