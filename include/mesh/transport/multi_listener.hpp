#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/transport/multi_connection.hpp"

#include <asio/io_context.hpp>

#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

MESH_NAMESPACE_BEGIN

/// A listener of one of several transports (see BasicMulti); what it accepts comes
/// wrapped in the matching MultiConnection.
template <class... Listeners>
class MultiListener {
public:
    using connection_type = MultiConnection<typename Listeners::connection_type...>;  ///< what accept returns

    /// Holds a default-constructed listener of the first type, which listens on nothing.
    MultiListener() = default;
    /// Holds `listener`, moved in.
    template <class L, class = std::enable_if_t<detail::is_one_of<L, Listeners...>>>
    explicit MultiListener(L&& listener) : held_(std::move(listener)) {}

    /// The listener held, when it is an L; nullptr otherwise.
    template <class L>
    L* get_if() noexcept { return std::get_if<L>(&held_); }
    /// The listener held, read-only, when it is an L; nullptr otherwise.
    template <class L>
    const L* get_if() const noexcept { return std::get_if<L>(&held_); }

    /// The held listener's endpoint.
    std::string endpoint() const {
        return std::visit([](const auto& l) { return std::string(l.endpoint()); }, held_);
    }

    /// The held listener's accept, its connection wrapped in a MultiConnection. The
    /// first form throws std::system_error; the second sets `ec`.
    ///@{
    connection_type accept() {
        return detail::or_throw("accept", endpoint(), [&](std::error_code& ec) { return accept(ec); });
    }
    connection_type accept(std::error_code& ec) {
        return std::visit([&](auto& l) { return connection_type(l.accept(ec)); }, held_);
    }
    ///@}

    /// The held listener's close.
    void close() {
        std::visit([](auto& l) { l.close(); }, held_);
    }

    // ---- Driven by a Mesh's reactor ----

    /// The held listener's async_accept_loop: until close(), each accepted connection
    /// goes to on_connection(connection_type&&), wrapped in a MultiConnection.
    template <class OnConnection>
    void async_accept_loop(asio::io_context& io, OnConnection on_connection) {
        std::visit(
            [&](auto& l) {
                using Accepted = typename std::decay_t<decltype(l)>::connection_type;
                l.async_accept_loop(io, [on_connection = std::move(on_connection)](Accepted&& accepted) mutable {
                    on_connection(connection_type(std::move(accepted)));
                });
            },
            held_);
    }

private:
    std::variant<Listeners...> held_;
};

MESH_NAMESPACE_END
