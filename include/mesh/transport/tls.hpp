#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/endpoint.hpp"
#include "mesh/transport/stream/connect.hpp"
#include "mesh/transport/stream/connection.hpp"
#include "mesh/transport/stream/listener.hpp"
#include "mesh/transport/tcp.hpp"
#include "mesh/transport/tls/context.hpp"
#include "mesh/transport/tls/session.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

MESH_NAMESPACE_BEGIN

namespace detail {
inline constexpr char tls_scheme[] = "tcps";
using TlsNaming = IpNaming<tls_scheme>;
} // namespace detail

/// A tcps:// connection; session().peer() tells who is at the other end (TlsPeer).
using TlsConnection = StreamConnection<asio::ip::tcp, detail::TlsSession>;
/// A tcps:// listener: each connection's TLS and version handshakes run in accept
/// (or on the reactor, with Mesh::accept_from).
using TlsListener = StreamListener<asio::ip::tcp, detail::TlsNaming, detail::TlsSecurity>;

/// TLS over TCP, "tcps://host:port" (also the older "tls://", or a bare "host:port"):
/// the TLS handshake, then Splinter's version handshake and frames inside it, so
/// Splinter's tcps:// nodes interoperate (TLS 1.2; TLS 1.3 when both sides have it).
class Tls {
public:
    using connection_type = TlsConnection;  ///< what connect returns and a listener accepts
    using listener_type = TlsListener;      ///< what listen returns

    /// Not configured: every listen and connect fails with tls_config. Lets a Multi
    /// transport exist before (or without) TLS settings.
    Tls() : home_(std::make_shared<asio::io_context>()) {}
    /// Throws std::system_error (tls_config) saying what is wrong with the options.
    explicit Tls(TlsOptions options) : Tls(std::move(options), nullptr) {}
    /// On failure ec is tls_config and every listen and connect fails with it.
    Tls(TlsOptions options, std::error_code& ec) : Tls(std::move(options), &ec) {}

    /// The options it was made with.
    const TlsOptions& options() const noexcept { return options_; }

    /// True for a "tcps://" or "tls://" endpoint, and for a non-empty one without a scheme.
    static bool accepts(std::string_view endpoint) {
        const auto scheme = detail::endpoint_scheme(endpoint);
        return scheme.empty() ? !endpoint.empty() : scheme == "tcps" || scheme == "tls";
    }

    /// Listens on `bind`, an address (or host name) and port, as Tcp::listen does.
    /// Errors include tls_config (not configured, or no server certificate), unknown_scheme,
    /// invalid_endpoint and address_in_use. The first form throws std::system_error;
    /// the second sets `ec` and returns a listener that accepts nothing.
    ///@{
    TlsListener listen(std::string_view bind) {
        return detail::or_throw("listen", bind, [&](std::error_code& ec) { return listen(bind, ec); });
    }
    TlsListener listen(std::string_view bind, std::error_code& ec) {
        if (!context_ || !context_->server()) {
            ec = errc::tls_config;
            return {};
        }
        asio::ip::tcp::endpoint endpoint;
        if ((ec = resolve(bind, endpoint))) return {};
        asio::ip::tcp::acceptor acceptor(*home_);
        if ((ec = detail::open_acceptor(acceptor, endpoint, true))) return {};
        return TlsListener(home_, std::move(acceptor), options_.stream, detail::TlsSecurity{context_});
    }
    ///@}

    /// Connects, then runs the TLS and version handshakes, within the timeouts.
    /// Errors include tls_config, unknown_scheme, invalid_endpoint, connection_refused,
    /// timeout and the certificate errors (certificate_untrusted, ...). The first form
    /// throws std::system_error; the second sets `ec` and returns a connection that is
    /// not open.
    ///@{
    TlsConnection connect(std::string_view endpoint) {
        return detail::or_throw("connect", endpoint, [&](std::error_code& ec) { return connect(endpoint, ec); });
    }
    TlsConnection connect(std::string_view endpoint, std::error_code& ec) {
        if (!context_) {
            ec = errc::tls_config;
            return {};
        }
        asio::ip::tcp::endpoint target;
        std::string host;
        if ((ec = resolve(endpoint, target, &host))) return {};
        auto session = detail::TlsSession::client(*context_, host, ec);
        if (ec) return {};
        return detail::dial<detail::TlsNaming, asio::ip::tcp>(home_, target, std::move(session), options_.stream, ec);
    }
    ///@}

private:
    Tls(TlsOptions options, std::error_code* out)
        : home_(std::make_shared<asio::io_context>()), options_(std::move(options)) {
        std::error_code ec;
        std::string why;
        context_ = detail::TlsContext::make(options_, ec, why);
        if (out) *out = ec;
        else if (ec) throw std::system_error(ec, "TLS: " + why);
    }

    [[nodiscard]] std::error_code resolve(std::string_view endpoint, asio::ip::tcp::endpoint& out, std::string* host = nullptr) {
        if (!accepts(endpoint)) return errc::unknown_scheme;
        return detail::resolve_tcp(*home_, detail::endpoint_address(endpoint), out, host);
    }

    std::shared_ptr<asio::io_context> home_;
    TlsOptions options_;
    std::shared_ptr<const detail::TlsContext> context_;
};

MESH_NAMESPACE_END
