#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/endpoint.hpp"
#include "mesh/transport/stream/connect.hpp"
#include "mesh/transport/stream/connection.hpp"
#include "mesh/transport/stream/listener.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>
#include <memory>
#include <string>
#include <string_view>

MESH_NAMESPACE_BEGIN

namespace detail {

// "scheme://ip:port" names for TCP endpoints, captured once so they never fail later.
template <const char* Scheme>
struct IpNaming {
    static std::string format(const asio::ip::tcp::endpoint& endpoint) {
        const auto address = endpoint.address();
        std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
        return std::string(Scheme) + "://" + host + ":" + std::to_string(endpoint.port());
    }
    static std::string listener(const asio::ip::tcp::acceptor& acceptor) {
        std::error_code ec;
        return format(acceptor.local_endpoint(ec));
    }
    static std::string local(const asio::ip::tcp::socket& socket) {
        std::error_code ec;
        return format(socket.local_endpoint(ec));
    }
    static std::string remote(const asio::ip::tcp::socket& socket) {
        std::error_code ec;
        return format(socket.remote_endpoint(ec));
    }
    static void tune(asio::ip::tcp::socket& socket, const StreamOptions& options) {
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);  // frames go out when written
        const TcpKeepalive& k = options.keepalive;
        if (!k.enabled) return;
        socket.set_option(asio::socket_base::keep_alive(true), ignored);
        const int fd = socket.native_handle();
        const int idle = static_cast<int>(k.idle.count()), interval = static_cast<int>(k.interval.count());
#if defined(TCP_KEEPIDLE)
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
#else
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPALIVE, &idle, sizeof idle);  // macOS names it so
#endif
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.count, sizeof k.count);
    }
};

inline constexpr char tcp_scheme[] = "tcp";
using TcpNaming = IpNaming<tcp_scheme>;

// "host:port", "[v6]:port" -> host, port.
inline std::error_code split_host_port(std::string_view address, std::string& host, std::uint16_t& port) {
    std::string_view port_text;
    if (!address.empty() && address.front() == '[') {
        const auto close = address.find(']');
        if (close == std::string_view::npos) return invalid_endpoint("no ']' after the IPv6 address");
        if (close + 1 >= address.size() || address[close + 1] != ':')
            return invalid_endpoint("no ':port' after the IPv6 address");
        host = std::string(address.substr(1, close - 1));
        port_text = address.substr(close + 2);
    } else {
        const auto colon = address.rfind(':');
        if (colon == std::string_view::npos) return invalid_endpoint("no ':port' after the host");
        host = std::string(address.substr(0, colon));
        port_text = address.substr(colon + 1);
    }
    unsigned value = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto result = std::from_chars(port_text.data(), end, value);
    if (host.empty()) return invalid_endpoint("no host before the port");
    if (port_text.empty()) return invalid_endpoint("no port after the ':'");
    if (result.ptr != end || result.ec == std::errc::invalid_argument)
        return invalid_endpoint("the port is not a number");
    if (result.ec != std::errc() || value > 65535) return invalid_endpoint("the port is above 65535");
    port = static_cast<std::uint16_t>(value);
    return {};
}

// An IP literal or the first address a DNS name resolves to.
inline std::error_code resolve_tcp(asio::io_context& io, std::string_view address, asio::ip::tcp::endpoint& out,
                                   std::string* host_out = nullptr) {
    std::string host;
    std::uint16_t port = 0;
    if (auto ec = split_host_port(address, host, port)) return ec;
    if (host_out) *host_out = host;
    std::error_code ec;
    const auto ip = asio::ip::make_address(host, ec);
    if (!ec) {
        out = asio::ip::tcp::endpoint(ip, port);
        return {};
    }
    asio::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) note_failure("the host name did not resolve");
    if (ec) return ec;
    if (results.empty()) return errc::invalid_endpoint;
    out = *results.begin();
    return {};
}

} // namespace detail

using TcpOptions = StreamOptions;                                      ///< the settings of a Tcp transport
using TcpConnection = StreamConnection<asio::ip::tcp>;                ///< a tcp:// connection
using TcpListener = StreamListener<asio::ip::tcp, detail::TcpNaming>;  ///< a tcp:// listener

/// The TCP transport: "tcp://host:port" or a bare "host:port", IPv4, [IPv6] or a DNS
/// name. Speaks Splinter's version handshake and v1 frames.
class Tcp {
public:
    using connection_type = TcpConnection;  ///< what connect returns and a listener accepts
    using listener_type = TcpListener;      ///< what listen returns

    /// A transport whose listeners and connections use `options`.
    explicit Tcp(TcpOptions options = {})
        : home_(std::make_shared<asio::io_context>()), options_(options) {}

    /// The options it was made with.
    const TcpOptions& options() const noexcept { return options_; }

    /// True for a "tcp://" endpoint, and for a non-empty one without a scheme.
    static bool accepts(std::string_view endpoint) {
        const auto scheme = detail::endpoint_scheme(endpoint);
        return scheme.empty() ? !endpoint.empty() : scheme == "tcp";
    }

    /// Listens on `bind`, an address (or host name) and port; port 0 takes a free one
    /// (TcpListener::endpoint tells which). Errors include unknown_scheme,
    /// invalid_endpoint and address_in_use. The first form throws std::system_error;
    /// the second sets `ec` and returns a listener that accepts nothing.
    ///@{
    TcpListener listen(std::string_view bind) {
        return detail::or_throw("listen", bind, [&](std::error_code& ec) { return listen(bind, ec); });
    }
    TcpListener listen(std::string_view bind, std::error_code& ec) {
        asio::ip::tcp::endpoint endpoint;
        if ((ec = resolve(bind, endpoint))) return {};
        asio::ip::tcp::acceptor acceptor(*home_);
        if ((ec = detail::open_acceptor(acceptor, endpoint, true))) return {};
        return TcpListener(home_, std::move(acceptor), options_);
    }
    ///@}

    /// Connects and runs the version handshake, each bounded by its timeout.
    /// Errors include unknown_scheme, invalid_endpoint, connection_refused and timeout.
    /// The first form throws std::system_error; the second sets `ec` and returns a
    /// connection that is not open.
    ///@{
    TcpConnection connect(std::string_view endpoint) {
        return detail::or_throw("connect", endpoint, [&](std::error_code& ec) { return connect(endpoint, ec); });
    }
    TcpConnection connect(std::string_view endpoint, std::error_code& ec) {
        asio::ip::tcp::endpoint target;
        if ((ec = resolve(endpoint, target))) return {};
        return detail::dial<detail::TcpNaming, asio::ip::tcp>(home_, target, detail::PlainSession(), options_, ec);
    }
    ///@}

private:
    [[nodiscard]] std::error_code resolve(std::string_view endpoint, asio::ip::tcp::endpoint& out) {
        if (!accepts(endpoint)) return errc::unknown_scheme;
        return detail::resolve_tcp(*home_, detail::endpoint_address(endpoint), out);
    }

    std::shared_ptr<asio::io_context> home_;
    TcpOptions options_;
};

MESH_NAMESPACE_END
