#pragma once

#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/endpoint.hpp"
#include "mesh/transport/socket_io.hpp"
#include "mesh/transport/stream_connection.hpp"
#include "mesh/transport/stream_handshake.hpp"
#include "mesh/transport/stream_listener.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <cerrno>
#include <charconv>
#include <memory>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace mesh {

namespace detail {

struct TcpNaming {
    static std::string format(const asio::ip::tcp::endpoint& endpoint) {
        const auto address = endpoint.address();
        std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
        return "tcp://" + host + ":" + std::to_string(endpoint.port());
    }
    static void tune(asio::ip::tcp::socket& socket) {
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);  // frames go out when written
    }
};

// "host:port", "[v6]:port" -> host, port.
inline std::error_code split_host_port(std::string_view address, std::string& host, std::uint16_t& port) {
    std::string_view port_text;
    if (!address.empty() && address.front() == '[') {
        const auto close = address.find(']');
        if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':')
            return errc::invalid_endpoint;
        host = std::string(address.substr(1, close - 1));
        port_text = address.substr(close + 2);
    } else {
        const auto colon = address.rfind(':');
        if (colon == std::string_view::npos) return errc::invalid_endpoint;
        host = std::string(address.substr(0, colon));
        port_text = address.substr(colon + 1);
    }
    unsigned value = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto result = std::from_chars(port_text.data(), end, value);
    if (host.empty() || port_text.empty() || result.ec != std::errc() || result.ptr != end || value > 65535)
        return errc::invalid_endpoint;
    port = static_cast<std::uint16_t>(value);
    return {};
}

} // namespace detail

using TcpOptions = StreamOptions;
using TcpConnection = StreamConnection<asio::ip::tcp>;
using TcpListener = StreamListener<asio::ip::tcp, detail::TcpNaming>;

// The TCP transport: "tcp://host:port" or a bare "host:port", IPv4, [IPv6] or a DNS
// name. Speaks Splinter's version handshake and v1 frames.
class Tcp {
public:
    using connection_type = TcpConnection;
    using listener_type = TcpListener;

    explicit Tcp(TcpOptions options = {})
        : home_(std::make_shared<asio::io_context>()), options_(options) {}

    const TcpOptions& options() const noexcept { return options_; }

    static bool accepts(std::string_view endpoint) {
        const auto scheme = detail::endpoint_scheme(endpoint);
        return scheme.empty() ? !endpoint.empty() : scheme == "tcp";
    }

    TcpListener listen(std::string_view bind) {
        return detail::or_throw("listen", [&](std::error_code& ec) { return listen(bind, ec); });
    }
    TcpListener listen(std::string_view bind, std::error_code& ec) {
        asio::ip::tcp::endpoint endpoint;
        if ((ec = resolve(bind, endpoint))) return {};
        asio::ip::tcp::acceptor acceptor(*home_);
        // These return void under ASIO_NO_DEPRECATED: test ec after each call.
        acceptor.open(endpoint.protocol(), ec);
        if (ec) return {};
        acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
        acceptor.bind(endpoint, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        // Asio's own category does not map to std::errc in every version: test both.
        if (ec == asio::error::address_in_use || ec == std::errc::address_in_use) ec = errc::address_in_use;
        if (ec) return {};
        return TcpListener(home_, std::move(acceptor), options_);
    }

    // Connects and runs the version handshake, each bounded by its timeout.
    TcpConnection connect(std::string_view endpoint) {
        return detail::or_throw("connect", [&](std::error_code& ec) { return connect(endpoint, ec); });
    }
    TcpConnection connect(std::string_view endpoint, std::error_code& ec) {
        asio::ip::tcp::endpoint target;
        if ((ec = resolve(endpoint, target))) return {};
        asio::ip::tcp::socket socket(*home_);
        if ((ec = connect_socket(socket, target))) return {};
        detail::TcpNaming::tune(socket);
        if ((ec = detail::connector_handshake(socket, detail::clock::now() + options_.handshake_timeout)))
            return {};
        auto local = detail::TcpNaming::format(socket.local_endpoint(ec));
        auto remote = detail::TcpNaming::format(socket.remote_endpoint(ec));
        ec = {};
        return TcpConnection(home_, std::move(socket), std::move(local), std::move(remote),
                             options_.max_message_size);
    }

private:
    std::error_code resolve(std::string_view endpoint, asio::ip::tcp::endpoint& out) {
        if (!accepts(endpoint)) return errc::unknown_scheme;
        std::string host;
        std::uint16_t port = 0;
        if (auto ec = detail::split_host_port(detail::endpoint_address(endpoint), host, port)) return ec;
        std::error_code ec;
        const auto address = asio::ip::make_address(host, ec);
        if (!ec) {
            out = asio::ip::tcp::endpoint(address, port);
            return {};
        }
        asio::ip::tcp::resolver resolver(*home_);
        auto results = resolver.resolve(host, std::to_string(port), ec);
        if (ec) return ec;
        if (results.empty()) return errc::invalid_endpoint;
        out = *results.begin();
        return {};
    }

    std::error_code connect_socket(asio::ip::tcp::socket& socket, const asio::ip::tcp::endpoint& target) {
        std::error_code ec;
        socket.open(target.protocol(), ec);
        if (ec) return ec;
        socket.non_blocking(true, ec);
        if (ec) return ec;
        // Not socket.connect(): Asio's synchronous connect waits for completion without a
        // limit even on a non-blocking socket, which would defeat connect_timeout.
        if (::connect(socket.native_handle(), target.data(), static_cast<socklen_t>(target.size())) != 0)
            ec = std::error_code(errno, std::system_category());
        if (ec == std::errc::operation_in_progress || ec == std::errc::interrupted) {
            if ((ec = detail::wait_ready(socket.native_handle(), POLLOUT, detail::clock::now() + options_.connect_timeout)))
                return ec;
            int error = 0;
            socklen_t length = sizeof(error);
            ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_ERROR, &error, &length);
            ec = error ? std::error_code(error, std::system_category()) : std::error_code();
        }
        // A refusal is reported synchronously (asio category) or through SO_ERROR (system category).
        if (ec == asio::error::connection_refused || ec == std::errc::connection_refused)
            return errc::connection_refused;
        return ec;
    }

    std::shared_ptr<asio::io_context> home_;
    TcpOptions options_;
};

} // namespace mesh
