#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/endpoint.hpp"
#include "mesh/transport/stream/connect.hpp"
#include "mesh/transport/stream/connection.hpp"
#include "mesh/transport/stream/listener.hpp"

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

MESH_NAMESPACE_BEGIN

namespace detail {

using unix_protocol = asio::local::stream_protocol;

struct UnixNaming {
    static std::string listener(const unix_protocol::acceptor& acceptor) {
        std::error_code ec;
        return "unix://" + acceptor.local_endpoint(ec).path();
    }
    // The connecting side has no name of its own; it names the path it dialled.
    static std::string local(const unix_protocol::socket& socket) {
        std::error_code ec;
        auto path = socket.local_endpoint(ec).path();
        if (path.empty()) path = socket.remote_endpoint(ec).path();
        return "unix://" + path;
    }
    // Accepted sockets have unnamed peers: a number never handed out before tells
    // them apart, so accept_from's default ids stay unique. Not the descriptor: a
    // peer that died keeps its id registered while its descriptor is reused at once.
    static std::string remote(unix_protocol::socket& socket) {
        static std::atomic<std::uint64_t> unnamed{0};
        std::error_code ec;
        const auto path = socket.remote_endpoint(ec).path();
        if (!path.empty()) return "unix://" + path;
        return "unix://" + socket.local_endpoint(ec).path() + "#" +
               std::to_string(unnamed.fetch_add(1, std::memory_order_relaxed) + 1);
    }
    static void tune(unix_protocol::socket&, const StreamOptions&) noexcept {}
};

inline std::error_code unix_path(std::string_view endpoint, std::string& path) {
    path = std::string(endpoint_address(endpoint));
    if (path.empty()) return invalid_endpoint("no socket path");
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        return invalid_endpoint("the socket path is longer than the system allows");
    if (path.find('\0') != std::string::npos) return invalid_endpoint("the socket path holds a NUL byte");
    return {};
}

// A file at `path` may be replaced only if it is a socket nobody listens on.
inline std::error_code clear_stale_socket(const std::string& path) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) return {};
    if (!S_ISSOCK(info.st_mode)) return errc::address_in_use;
    // Non-blocking: a live listener with a full backlog refuses at once (EAGAIN)
    // instead of holding this call until it accepts.
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0) return os_error(errno);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, path.size());
    const bool live = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 ||
                      errno != ECONNREFUSED;
    ::close(probe);
    if (live) return errc::address_in_use;
    ::unlink(path.c_str());
    return {};
}

// Removes the socket file when the listener closes, unless another has replaced it.
inline std::shared_ptr<void> own_socket_file(const std::string& path) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) return nullptr;
    struct Owned {
        Owned(std::string p, dev_t d, ino_t i) : path(std::move(p)), device(d), inode(i) {}
        Owned(const Owned&) = delete;
        Owned& operator=(const Owned&) = delete;
        std::string path;
        dev_t device;
        ino_t inode;
        ~Owned() {
            struct stat now {};
            if (::lstat(path.c_str(), &now) == 0 && now.st_dev == device && now.st_ino == inode) ::unlink(path.c_str());
        }
    };
    return std::make_shared<Owned>(path, info.st_dev, info.st_ino);
}

} // namespace detail

using UnixOptions = StreamOptions;                                               ///< the settings of a Unix transport
using UnixConnection = StreamConnection<detail::unix_protocol>;                  ///< a unix:// connection
using UnixListener = StreamListener<detail::unix_protocol, detail::UnixNaming>;  ///< a unix:// listener

/// Unix domain stream sockets, "unix:///path/to/socket" (or "unix://relative"):
/// the frames and handshake of tcp:// between processes on one host.
class Unix {
public:
    using connection_type = UnixConnection;  ///< what connect returns and a listener accepts
    using listener_type = UnixListener;      ///< what listen returns

    /// A transport whose listeners and connections use `options`.
    explicit Unix(UnixOptions options = {}) : home_(std::make_shared<asio::io_context>()), options_(options) {}

    /// The options it was made with.
    const UnixOptions& options() const noexcept { return options_; }

    /// True for a "unix://" endpoint.
    static bool accepts(std::string_view endpoint) { return detail::endpoint_scheme(endpoint) == "unix"; }

    /// Listens on the socket path of `bind`; the listener deletes the socket file when
    /// it closes, unless another has replaced it.
    /// Replaces a stale socket file left by a dead process, never anything else.
    /// Errors include unknown_scheme, invalid_endpoint and address_in_use. The first
    /// form throws std::system_error; the second sets `ec` and returns a listener that
    /// accepts nothing.
    ///@{
    UnixListener listen(std::string_view bind) {
        return detail::or_throw("listen", bind, [&](std::error_code& ec) { return listen(bind, ec); });
    }
    UnixListener listen(std::string_view bind, std::error_code& ec) {
        std::string path;
        if ((ec = parse(bind, path)) || (ec = detail::clear_stale_socket(path))) return {};
        detail::unix_protocol::acceptor acceptor(*home_);
        if ((ec = detail::open_acceptor(acceptor, detail::unix_protocol::endpoint(path), false))) return {};
        return UnixListener(home_, std::move(acceptor), options_, {}, detail::own_socket_file(path));
    }
    ///@}

    /// Connects to the socket path of `endpoint` and runs the version handshake, each
    /// bounded by its timeout. Errors include unknown_scheme, invalid_endpoint,
    /// connection_refused (also when no socket file is there) and timeout. The first
    /// form throws std::system_error; the second sets `ec` and returns a connection
    /// that is not open.
    ///@{
    UnixConnection connect(std::string_view endpoint) {
        return detail::or_throw("connect", endpoint, [&](std::error_code& ec) { return connect(endpoint, ec); });
    }
    UnixConnection connect(std::string_view endpoint, std::error_code& ec) {
        std::string path;
        if ((ec = parse(endpoint, path))) return {};
        return detail::dial<detail::UnixNaming, detail::unix_protocol>(
            home_, detail::unix_protocol::endpoint(path), detail::PlainSession(), options_, ec);
    }
    ///@}

private:
    static std::error_code parse(std::string_view endpoint, std::string& path) {
        if (!accepts(endpoint)) return errc::unknown_scheme;
        return detail::unix_path(endpoint, path);
    }

    std::shared_ptr<asio::io_context> home_;
    UnixOptions options_;
};

MESH_NAMESPACE_END
