#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/connection.hpp"
#include "mesh/transport/stream/handshake.hpp"
#include "mesh/transport/stream/options.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

MESH_NAMESPACE_BEGIN

namespace detail {

// Opens, binds and listens; the errors every stream listener reports alike.
template <class Acceptor, class Endpoint>
std::error_code open_acceptor(Acceptor& acceptor, const Endpoint& endpoint, bool reuse_address) {
    std::error_code ec;
    // These return void under ASIO_NO_DEPRECATED: test ec after each call.
    acceptor.open(endpoint.protocol(), ec);
    if (ec) return ec;
    if (reuse_address) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    // Asio's own category does not map to std::errc in every version: test both.
    if (ec == asio::error::address_in_use || ec == std::errc::address_in_use) ec = errc::address_in_use;
    return ec;
}

} // namespace detail

/// What a listener's accepts came to; readable from any thread, also after the
/// listener was handed to a Mesh (keep the pointer from stats()).
struct ListenerStats {
    std::atomic<std::uint64_t> accepted{0};           ///< connections whose handshakes completed
    std::atomic<std::uint64_t> handshakes_failed{0};  ///< refused, broken or timed out
    std::atomic<std::uint64_t> over_limit{0};         ///< closed at once: max_pending_handshakes reached
    std::atomic<std::uint64_t> handshaking{0};        ///< handshakes running now
};

/// A listening stream socket. accept() blocks, as Splinter's does; a Mesh can
/// instead run the accepts on its reactor (Mesh::accept_from), handshakes included.
/// Naming formats endpoints; Security makes each accepted connection's session.
template <class Protocol, class Naming, class Security = detail::PlainSecurity>
class StreamListener {
public:
    using session_type = typename Security::session_type;              ///< the session of each accepted connection
    using connection_type = StreamConnection<Protocol, session_type>;  ///< what accept returns
    using acceptor_type = typename Protocol::acceptor;                 ///< the Protocol's acceptor
    using socket_type = typename Protocol::socket;                     ///< the Protocol's socket

    /// Listens on nothing: accept fails with not_connected.
    StreamListener() = default;
    /// Takes over `acceptor`, which listens already (a transport's listen makes it).
    /// `bound` lives as long as the listener is open: a Unix listener's socket file.
    StreamListener(std::shared_ptr<asio::io_context> home, acceptor_type acceptor, StreamOptions options,
                   Security security = {}, std::shared_ptr<void> bound = nullptr)
        : home_(std::move(home)), acceptor_(std::move(acceptor)), options_(options), security_(std::move(security)),
          bound_(std::move(bound)), stats_(std::make_shared<ListenerStats>()) {
        endpoint_ = Naming::listener(*acceptor_);
    }
    /// Moves the listener.
    StreamListener(StreamListener&&) = default;
    /// Moves the listener.
    StreamListener& operator=(StreamListener&&) = default;
    /// Closes it (see close).
    ~StreamListener() { close(); }

    /// The bound endpoint (the real port when port 0 was asked for).
    const std::string& endpoint() const noexcept { return endpoint_; }
    /// Its accept counters (see ListenerStats); null for a default-constructed listener.
    std::shared_ptr<const ListenerStats> stats() const noexcept { return stats_; }

    /// Blocks for the next connection and its handshakes (bounded by
    /// StreamOptions::handshake_timeout). Errors include not_connected (closed, or
    /// never listening) and the handshakes' errors. The first form throws
    /// std::system_error; the second sets `ec` and returns a connection that is not open.
    ///@{
    connection_type accept() {
        return detail::or_throw("accept", endpoint(), [&](std::error_code& ec) { return accept(ec); });
    }
    connection_type accept(std::error_code& ec) {
        if (!acceptor_ || !acceptor_->is_open()) return (ec = errc::not_connected), connection_type();
        socket_type socket(*home_);
        acceptor_->accept(socket, ec);  // void under ASIO_NO_DEPRECATED
        if (ec) return connection_type();
        return finish_accept(std::move(socket), ec);
    }
    ///@}

    /// Stops accepting, on the reactor too, and closes the socket; a Unix listener's
    /// socket file is deleted then (unless another has replaced it).
    void close() {
        if (accepting_) accepting_->close();
        accepting_.reset();
        if (acceptor_) {
            std::error_code ignored;
            acceptor_->close(ignored);
        }
        bound_.reset();
    }

    // ---- Driven by a Mesh's reactor ----

    /// Accepts on `io` until close(): each connection whose handshake completes in
    /// time is handed to on_connection(connection_type&&). Handshakes run
    /// concurrently, so a silent client delays nobody.
    template <class OnConnection>
    void async_accept_loop(asio::io_context& io, OnConnection on_connection) {
        // A listener from a failed listen() has no acceptor; a closed one has no descriptor.
        if (!acceptor_ || !acceptor_->is_open()) return;
        std::error_code ec;
        const auto protocol = acceptor_->local_endpoint(ec).protocol();
        if (ec) return;
        const auto fd = acceptor_->release(ec);
        if (ec) return;
        acceptor_.emplace(io, protocol, fd);
        accepting_ =
            std::make_shared<AcceptLoop>(io, *acceptor_, home_, options_, security_, stats_, std::move(on_connection));
        accepting_->next();
    }

private:
    connection_type finish_accept(socket_type socket, std::error_code& ec) {
        socket.non_blocking(true, ec);
        if (ec) return connection_type();
        const auto deadline = detail::clock::now() + options_.handshake_timeout;
        auto session = security_.server_session(socket.native_handle(), ec);
        if (!ec) ec = detail::run_handshake(socket, session, detail::Role::listener, deadline);
        if (stats_) ++(ec ? stats_->handshakes_failed : stats_->accepted);
        if (ec) return connection_type();
        return make_connection(home_, std::move(socket), std::move(session), options_);
    }

    static connection_type make_connection(const std::shared_ptr<asio::io_context>& home, socket_type socket,
                                           session_type session, const StreamOptions& options) {
        Naming::tune(socket, options);
        auto local = Naming::local(socket);
        auto remote = Naming::remote(socket);
        return connection_type(home, std::move(socket), std::move(session), std::move(local), std::move(remote),
                               options);
    }

    // State of the reactor-driven accepts, shared with their pending handlers.
    class AcceptLoop : public std::enable_shared_from_this<AcceptLoop> {
    public:
        AcceptLoop(asio::io_context& io, acceptor_type& acceptor, std::shared_ptr<asio::io_context> home,
                   StreamOptions options, Security security, std::shared_ptr<ListenerStats> stats,
                   std::function<void(connection_type&&)> on_connection)
            : io_(io), acceptor_(acceptor), home_(std::move(home)), options_(options), security_(std::move(security)),
              stats_(std::move(stats)), on_connection_(std::move(on_connection)), retry_(io) {}

        void next() {
            if (closed_) return;
            auto self = this->shared_from_this();
            acceptor_.async_accept(io_, [self](std::error_code ec, socket_type socket) {
                if (self->closed_) return;
                if (ec) {
                    // Out of descriptors or similar: retry soon rather than spin.
                    self->retry_.expires_after(std::chrono::milliseconds(100));
                    self->retry_.async_wait([self](std::error_code) { self->next(); });
                    return;
                }
                self->handshake(std::move(socket));
                self->next();
            });
        }

        void close() {
            closed_ = true;
            retry_.cancel();
            for (auto* pending : pending_) pending->abort();
        }

    private:
        void handshake(socket_type socket) {
            if (options_.max_pending_handshakes != 0 && pending_.size() >= options_.max_pending_handshakes) {
                ++stats_->over_limit;
                return;  // the socket closes here
            }
            auto self = this->shared_from_this();
            auto on_done = [self](detail::HandshakeAbort* op, std::error_code ec, socket_type&& done,
                                  session_type&& session) {
                self->pending_.erase(op);
                --self->stats_->handshaking;
                if (ec) ++self->stats_->handshakes_failed;
                if (ec || self->closed_) return;
                ++self->stats_->accepted;
                self->on_connection_(make_connection(self->home_, std::move(done), std::move(session), self->options_));
            };
            using Op = detail::AsyncListenerHandshake<socket_type, Security, decltype(on_done)>;
            std::error_code ignored;
            socket.non_blocking(true, ignored);
            auto op = std::make_shared<Op>(std::move(socket), security_, std::move(on_done));
            pending_.insert(op.get());
            ++stats_->handshaking;
            op->start(options_.handshake_timeout);
        }

        asio::io_context& io_;
        acceptor_type& acceptor_;
        std::shared_ptr<asio::io_context> home_;
        StreamOptions options_;
        Security security_;
        std::shared_ptr<ListenerStats> stats_;
        std::function<void(connection_type&&)> on_connection_;
        asio::steady_timer retry_;
        std::set<detail::HandshakeAbort*> pending_;
        bool closed_ = false;
    };

    std::shared_ptr<asio::io_context> home_;
    std::optional<acceptor_type> acceptor_;
    StreamOptions options_;
    Security security_;
    std::shared_ptr<void> bound_;
    std::shared_ptr<ListenerStats> stats_;
    std::string endpoint_;
    std::shared_ptr<AcceptLoop> accepting_;
};

MESH_NAMESPACE_END
