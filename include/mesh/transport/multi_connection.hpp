#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/buffer_pool.hpp"
#include "mesh/detail/direct_send.hpp"
#include "mesh/detail/liveness.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

MESH_NAMESPACE_BEGIN

namespace detail {

template <class T, class... Ts>
inline constexpr bool is_one_of = (std::is_same_v<T, Ts> || ...);

} // namespace detail

/// A connection of one of several transports (see BasicMulti), standing in for it
/// everywhere: on its own and in a Mesh. A default-constructed one is not open.
template <class... Connections>
class MultiConnection {
public:
    /// Not open.
    MultiConnection() = default;
    /// Holds `connection`, moved in.
    template <class C, class = std::enable_if_t<detail::is_one_of<C, Connections...>>>
    explicit MultiConnection(C&& connection) : held_(std::move(connection)) {}

    /// The connection held, when it is a C; nullptr otherwise.
    template <class C>
    C* get_if() noexcept { return std::get_if<C>(&held_); }
    /// The connection held, read-only, when it is a C; nullptr otherwise.
    template <class C>
    const C* get_if() const noexcept { return std::get_if<C>(&held_); }

    /// The held connection's is_open.
    bool is_open() const noexcept { return visit([](const auto& c) { return c.is_open(); }); }
    /// The held connection's remote_endpoint.
    const std::string& remote_endpoint() const noexcept {
        return visit([](const auto& c) -> const std::string& { return c.remote_endpoint(); });
    }
    /// The held connection's local_endpoint.
    const std::string& local_endpoint() const noexcept {
        return visit([](const auto& c) -> const std::string& { return c.local_endpoint(); });
    }

    /// The held connection's blocking send, moving the payload.
    [[nodiscard]] std::error_code send(Payload&& payload) {
        return visit([&](auto& c) { return c.send(std::move(payload)); });
    }
    /// The held connection's blocking send of `payload` (as const).
    [[nodiscard]] std::error_code send(const Payload& payload) {
        return visit([&](auto& c) { return c.send(payload); });
    }
    /// The held connection's blocking recv.
    [[nodiscard]] std::error_code recv(Payload& out) {
        return visit([&](auto& c) { return c.recv(out); });
    }
    /// The held connection's recv_for: recv, waiting at most `timeout`.
    [[nodiscard]] std::error_code recv_for(Payload& out, std::chrono::steady_clock::duration timeout) {
        return visit([&](auto& c) { return c.recv_for(out, timeout); });
    }
    /// The held connection's disconnect.
    std::error_code disconnect() {
        return visit([](auto& c) { return c.disconnect(); });
    }

    // ---- Driven by a Mesh ----

    /// True when the connection held sends directly (inproc). A mesh asks once, in add:
    /// the answer never changes for a connection.
    bool sends_directly() const noexcept {
        return visit([](const auto& c) { return detail::connection_sends_directly(c); });
    }
    /// Called only when sends_directly() is true; from any thread, as the held one allows.
    /// not_connected when the held connection has no direct send.
    [[nodiscard]] std::error_code try_send_direct(Payload& payload, std::size_t limit) {
        return visit([&](auto& c) -> std::error_code {
            if constexpr (detail::has_direct_send<std::decay_t<decltype(c)>>::value)
                return c.try_send_direct(payload, limit);
            else
                return errc::not_connected;
        });
    }
    /// The held connection's direct_queue_depth; 0 when it has no direct send.
    std::size_t direct_queue_depth() const noexcept {
        return visit([](const auto& c) -> std::size_t {
            if constexpr (detail::has_direct_send<std::decay_t<decltype(c)>>::value) return c.direct_queue_depth();
            else return 0;
        });
    }

    /// The held connection's async_room; called only when sends_directly() is true.
    template <class Handler>
    void async_room(std::size_t limit, Handler&& handler) {
        visit([&](auto& c) {
            if constexpr (detail::has_direct_send<std::decay_t<decltype(c)>>::value)
                c.async_room(limit, std::forward<Handler>(handler));
        });
    }

    /// The held connection's attach: a Mesh's reactor drives it on `io` from now on.
    void attach(asio::io_context& io, std::size_t max_message_size) {
        visit([&](auto& c) { c.attach(io, max_message_size); });
    }
    /// The held connection's use_pool, where it decodes frames.
    void use_pool(detail::BufferPool* pool) noexcept {
        visit([&](auto& c) {
            if constexpr (detail::uses_buffer_pool<std::decay_t<decltype(c)>>::value) c.use_pool(pool);
        });
    }
    /// The held connection's frame_unfinished; false for one that moves payloads whole.
    bool frame_unfinished() const noexcept {
        return visit([](const auto& c) {
            if constexpr (detail::has_liveness_limits<std::decay_t<decltype(c)>>::value) return c.frame_unfinished();
            else return false;
        });
    }
    /// The held connection's frame_timeout; 0 (no limit) for one that moves payloads whole.
    std::chrono::milliseconds frame_timeout() const noexcept {
        return limit([](const auto& c) { return c.frame_timeout(); });
    }
    /// The held connection's read_idle_timeout; 0 (no limit) for one that moves payloads whole.
    std::chrono::milliseconds read_idle_timeout() const noexcept {
        return limit([](const auto& c) { return c.read_idle_timeout(); });
    }
    /// The held connection's write_stall_timeout; 0 (no limit) for one that moves payloads whole.
    std::chrono::milliseconds write_stall_timeout() const noexcept {
        return limit([](const auto& c) { return c.write_stall_timeout(); });
    }
    /// The held connection's bytes_written; 0 for one that moves payloads whole.
    std::uint64_t bytes_written() const noexcept { return count([](const auto& c) { return c.bytes_written(); }); }
    /// The held connection's bytes_read; 0 for one that moves payloads whole.
    std::uint64_t bytes_read() const noexcept { return count([](const auto& c) { return c.bytes_read(); }); }
    /// The held connection's unread: the next try_take returns `payload`.
    void unread(Payload&& payload) {
        visit([&](auto& c) { c.unread(std::move(payload)); });
    }
    /// The held connection's try_take: the next received message, if one is waiting.
    bool try_take(Payload& out, std::error_code& ec) {
        return visit([&](auto& c) { return c.try_take(out, ec); });
    }
    /// The held connection's async_fill: handler(error_code) runs when try_take may have more.
    template <class Handler>
    void async_fill(Handler&& handler) {
        visit([&](auto& c) { c.async_fill(std::forward<Handler>(handler)); });
    }
    /// The held connection's async_write_batch. A connection that sends directly has
    /// none: the handler gets operation_not_supported (a mesh never asks it).
    template <class Take, class Handler>
    void async_write_batch(Take&& take, Handler&& handler) {
        visit([&](auto& c) {
            if constexpr (detail::always_sends_directly<std::decay_t<decltype(c)>>::value) {
                // Never reached: a mesh queues nothing for a connection that sends directly.
                handler(std::make_error_code(std::errc::operation_not_supported), std::size_t(0), std::size_t(0));
            } else {
                c.async_write_batch(std::forward<Take>(take), std::forward<Handler>(handler));
            }
        });
    }
    /// The held connection's cancel: pending asynchronous operations complete with operation_aborted.
    void cancel() {
        visit([](auto& c) { c.cancel(); });
    }
    /// The held connection's detach: back to standalone use.
    void detach() {
        visit([](auto& c) { c.detach(); });
    }

private:
    template <class F>
    decltype(auto) visit(F&& f) { return std::visit(std::forward<F>(f), held_); }
    template <class F>
    decltype(auto) visit(F&& f) const { return std::visit(std::forward<F>(f), held_); }
    // One of the held connection's byte counts, 0 where it has none.
    template <class Get>
    std::uint64_t count(Get get) const noexcept {
        return visit([&](const auto& c) -> std::uint64_t {
            if constexpr (detail::has_liveness_limits<std::decay_t<decltype(c)>>::value) return get(c);
            else return 0;
        });
    }
    // One of the held connection's liveness limits, 0 where it has none.
    template <class Get>
    std::chrono::milliseconds limit(Get get) const noexcept {
        return visit([&](const auto& c) {
            if constexpr (detail::has_liveness_limits<std::decay_t<decltype(c)>>::value) return get(c);
            else return std::chrono::milliseconds(0);
        });
    }

    std::variant<Connections...> held_;
};

MESH_NAMESPACE_END
