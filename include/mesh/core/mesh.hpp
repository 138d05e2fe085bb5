#pragma once

#include "mesh/version.hpp"
#include "mesh/config.hpp"
#include "mesh/core/async_start.hpp"
#include "mesh/core/dialer.hpp"
#include "mesh/core/events.hpp"
#include "mesh/core/mesh_core.hpp"
#include "mesh/core/stats.hpp"
#include "mesh/detail/deadline.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/send_result.hpp"

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

MESH_NAMESPACE_BEGIN

/// Sends and receives across many connections from one background reactor thread
/// (or on an io_context of the application's). Copies are cheap and share everything;
/// receiving copies share the work (each envelope reaches one receiver). Destroying
/// the last copy shuts the mesh down. Every member may be called from any thread.
///
/// The async_ members take any Asio completion token. Their handlers run on the
/// handler's associated executor, by default the io_context the mesh runs on, else
/// the system executor; never inside the call that started them, nor on the reactor.
template <class Transport, class Config = DefaultConfig>
class Mesh {
    static_assert(detail::validate_config<Config>(), "invalid mesh configuration");
    using Core = detail::MeshCore<Transport, Config>;

public:
    using transport_type = Transport;                             ///< the Transport parameter
    using config_type = Config;                                   ///< the Config parameter (its knobs)
    using connection_type = typename Transport::connection_type;  ///< what add takes and remove gives back
    using clock = std::chrono::steady_clock;                      ///< the clock timeouts are measured on

    class ConnectionSender;
    class LifeCycle;
    class Sender;
    class Receiver;

    /// Starts the reactor thread.
    Mesh() : owner_(std::make_shared<Owner>(Core::start())) {}

    /// Runs the reactor on `io`, the application's, instead of a thread of the
    /// mesh's: the mesh does its work inside io.run() (or poll, run_one...), which
    /// one thread at a time may call. It keeps work on `io` until it is shut down.
    /// Calls that wait for the reactor (recv, next_event, remove) return
    /// errc::on_reactor_thread from `io`'s thread, where shutdown() only begins the
    /// shutdown and returns an empty report; call it from another thread to wait for
    /// the report. Destroying the last copy also only begins it. Keep `io` alive, and
    /// let it run, until the shutdown is done.
    explicit Mesh(asio::io_context& io) : owner_(std::make_shared<Owner>(Core::start_on(io))) {}

    /// Copies share the mesh; each copy is a handle of its own for cancel().
    ///@{
    Mesh(const Mesh&) = default;
    Mesh(Mesh&&) noexcept = default;
    Mesh& operator=(const Mesh&) = default;
    Mesh& operator=(Mesh&&) noexcept = default;
    ~Mesh() = default;
    ///@}

    /// Adds a connection under `id` and returns its internal id (never reused).
    /// On error (duplicate_id, not_connected, shut_down) the connection is not moved from.
    /// The first form throws std::system_error; the second sets `ec` and returns 0.
    ///@{
    std::uint64_t add(connection_type&& connection, std::string id) {
        const std::string named = id;
        return detail::or_throw("mesh add", named,
                                [&](std::error_code& ec) { return add(std::move(connection), std::move(id), ec); });
    }
    std::uint64_t add(connection_type&& connection, std::string id, std::error_code& ec) {
        if (!owner_) return (ec = errc::shut_down), 0;
        return core().add(std::move(connection), std::move(id), ec);
    }
    ///@}

    /// Keeps a connection to `endpoint` under `id`, made with `transport` (a copy is
    /// kept), from a thread of the returned Dialer's: see Dialer and DialOptions. A
    /// mesh that is shut down ends it. Keep the Dialer: destroying it stops dialing.
    [[nodiscard]] Dialer dial(Transport transport, std::string endpoint, std::string id, DialOptions options = {}) {
        if (!owner_) return Dialer();
        return Dialer::start(owner_->core, std::move(transport), std::move(endpoint), std::move(id), options);
    }

    /// Takes a connection out of the mesh, still usable on its own. A connection
    /// that ended by itself can still be removed. Errors: not_found, shut_down, and
    /// on_reactor_thread from an id rule. The first form throws std::system_error; the
    /// second sets `ec` and returns a connection that is not open.
    ///@{
    [[nodiscard]] connection_type remove(const std::string& id) {
        return detail::or_throw("mesh remove", id, [&](std::error_code& ec) { return remove(id, ec); });
    }
    [[nodiscard]] connection_type remove(const std::string& id, std::error_code& ec) {
        if (!owner_) return (ec = errc::shut_down), connection_type();
        return core().remove(id, ec);
    }
    ///@}

    /// Lets the reactor accept from `listener` (an rvalue: the mesh now owns it): each
    /// connection is added under id_rule(connection) and announced by a
    /// ConnectionEvent::Kind::connected; an id already in use closes it with a
    /// Kind::refused event. The default rule is the remote endpoint, made unique with a
    /// `"#n"` suffix when taken. An accepted connection that dies is reported and then
    /// forgotten (its id is free again). No accept thread is needed; handshakes run
    /// concurrently with their deadlines. id_rule runs on the reactor thread: there,
    /// remove, recv and next_event return on_reactor_thread, and shutdown only begins.
    /// Error: shut_down. The form with `ec` sets it; the other throws std::system_error.
    ///@{
    template <class Listener, class IdRule>
    void accept_from(Listener&& listener, IdRule id_rule, std::error_code& ec) {
        if (!owner_) return (void)(ec = errc::shut_down);
        core().accept_from(std::forward<Listener>(listener), std::move(id_rule), ec);
    }
    template <class Listener, class IdRule>
    void accept_from(Listener&& listener, IdRule id_rule) {
        std::error_code ec;
        accept_from(std::forward<Listener>(listener), std::move(id_rule), ec);
        detail::throw_if(ec, "mesh accept_from");
    }
    ///@}
    /// accept_from with the default id rule: the remote endpoint, made unique with a
    /// `"#n"` suffix when taken. Throws std::system_error (shut_down).
    template <class Listener>
    void accept_from(Listener&& listener) {
        accept_from(std::forward<Listener>(listener), detail::RemoteEndpointId());
    }

    /// Queues the payload for envelope.id. Never blocks. On failure the envelope is
    /// untouched: message_too_large, not_found, queue_full, disconnected (see
    /// SendResult::reason), shut_down.
    SendResult send(Envelope&& envelope) { return send(envelope.id, std::move(envelope.payload)); }
    /// Queues the payload for `id`, as send(Envelope&&): on failure `payload` is untouched.
    SendResult send(const std::string& id, Payload&& payload) {
        if (!owner_) return {errc::shut_down, {}};
        return core().send(id, payload);
    }
    /// Copies the bytes straight into the queue: no payload for the caller to build,
    /// and none to give back on failure (the bytes stay where they are). Above the
    /// inline size the copy goes into a spare buffer of the mesh's when one is kept.
    SendResult send(const std::string& id, std::string_view bytes) { return send(id, bytes.data(), bytes.size()); }
    /// As send(id, bytes), for the `size` bytes at `data`.
    SendResult send(const std::string& id, const void* data, std::size_t size) {
        if (!owner_) return {errc::shut_down, {}};
        return core().send_copy(data, size, [&](Payload& payload) { return core().send(id, payload); });
    }

    /// Queues the payload for `id`, waiting for room in its queue instead of failing
    /// with queue_full; then completes with void(std::error_code): {} once queued, or
    /// send's other errors (message_too_large, not_found, disconnected, shut_down).
    /// The async_sends of one connection are queued in the order they started (a
    /// blocking send does not wait behind them). Cancelled (operation_aborted), it has
    /// queued nothing; the payload it held is dropped with it.
    template <class Token>
    auto async_send(const std::string& id, Payload&& payload, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code)>(
            [core = core_ptr(), scope = scope_.id](auto handler, const std::string& target, Payload message) {
                detail::start_async<>(core, scope, std::move(handler), [&](Core& c, auto op, auto slot) {
                    c.async_send(target, std::move(message), std::move(op), slot);
                });
            },
            token, id, std::move(payload));
    }
    /// async_send(envelope.id, envelope.payload, token).
    template <class Token>
    auto async_send(Envelope&& envelope, Token&& token) {
        return async_send(envelope.id, std::move(envelope.payload), std::forward<Token>(token));
    }

    /// Waits for the next envelope, as recv does, and completes with
    /// void(std::error_code, Envelope): {} and the envelope, or shut_down. Envelopes go
    /// to waiting async_recvs in the order they started, and blocking recvs take
    /// their share: each envelope reaches one receiver. Cancelled
    /// (operation_aborted), it has taken nothing.
    template <class Token>
    auto async_recv(Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, Envelope)>(
            [core = core_ptr(), scope = scope_.id](auto handler) {
                detail::start_async<Envelope>(core, scope, std::move(handler), [](Core& c, auto op, auto slot) {
                    c.async_recv(std::move(op), slot);
                });
            },
            token);
    }

    /// Waits for the next connection event and completes with
    /// void(std::error_code, ConnectionEvent): {} and the event, or shut_down once the
    /// mesh is shut down and every event was taken.
    template <class Token>
    auto async_next_event(Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, ConnectionEvent)>(
            [core = core_ptr(), scope = scope_.id](auto handler) {
                detail::start_async<ConnectionEvent>(core, scope, std::move(handler), [](Core& c, auto op, auto slot) {
                    c.async_next_event(std::move(op), slot);
                });
            },
            token);
    }

    /// Completes every waiting asynchronous operation this handle (this copy of the
    /// mesh) started with asio::error::operation_aborted. Each operation can also be
    /// cancelled alone through its handler's cancellation slot (any cancellation type).
    void cancel() {
        if (owner_) core().cancel(scope_.id);
    }

    /// A sender bound to one connection, for hot loops: no id lookup per message.
    /// Errors: not_found, shut_down. The first form throws std::system_error; the
    /// second sets `ec` and returns a sender bound to nothing.
    ///@{
    ConnectionSender connection_sender(const std::string& id) {
        return detail::or_throw("mesh connection_sender", id,
                                [&](std::error_code& ec) { return connection_sender(id, ec); });
    }
    ConnectionSender connection_sender(const std::string& id, std::error_code& ec) {
        if (!owner_ || core().is_shut_down()) return (ec = errc::shut_down), ConnectionSender();
        auto state = core().find(id);
        if (!state) return (ec = errc::not_found), ConnectionSender();
        ec = {};
        return ConnectionSender(owner_->core, std::move(state));
    }
    ///@}

    /// Blocks until an envelope arrives or the mesh shuts down (errc::shut_down).
    [[nodiscard]] std::error_code recv(Envelope& out) {
        std::size_t taken = 0;
        return recv(&out, 1, taken);
    }

    /// As recv, or errc::timeout.
    template <class Rep, class Period>
    [[nodiscard]] std::error_code recv_timeout(Envelope& out, std::chrono::duration<Rep, Period> timeout) {
        std::size_t taken = 0;
        return recv_timeout(&out, 1, taken, timeout);
    }

    /// Never waits: errc::would_block when nothing is queued.
    [[nodiscard]] std::error_code try_recv(Envelope& out) {
        std::size_t taken = 0;
        return try_recv(&out, 1, taken);
    }

    /// Batches: up to `max` envelopes into out[0..max), from any connections, each
    /// connection's in order. They wait as the single forms do for the first envelope,
    /// then take whatever else is queued without waiting; `taken` says how many (0 on
    /// an error; max == 0 returns at once). The queue's fence and checks are paid once
    /// per call, not per envelope.
    [[nodiscard]] std::error_code recv(Envelope* out, std::size_t max, std::size_t& taken) {
        return recv_until(out, max, taken, clock::time_point::max());
    }
    /// The batch form of recv_timeout (see the batch recv): errc::timeout when nothing came in time.
    template <class Rep, class Period>
    [[nodiscard]] std::error_code recv_timeout(Envelope* out, std::size_t max, std::size_t& taken,
                                 std::chrono::duration<Rep, Period> timeout) {
        // Reading the clock costs more than a hit: only do it when the queue is empty.
        auto ec = try_recv(out, max, taken);
        if (ec != errc::would_block) return ec;
        return recv_until(out, max, taken, detail::deadline_after(timeout));
    }
    /// The batch form of try_recv (see the batch recv): errc::would_block when nothing is queued.
    [[nodiscard]] std::error_code try_recv(Envelope* out, std::size_t max, std::size_t& taken) {
        taken = 0;
        if (!owner_) return errc::shut_down;
        return core().try_recv(out, max, taken);
    }

    /// The next connection event, waiting up to `timeout`: errc::timeout, or
    /// errc::shut_down once the mesh is shut down and every event was taken.
    template <class Rep, class Period>
    [[nodiscard]] std::error_code next_event(ConnectionEvent& out, std::chrono::duration<Rep, Period> timeout) {
        if (!owner_) return errc::shut_down;
        return core().next_event(out, detail::deadline_after(timeout));
    }
    /// next_event without waiting: errc::timeout when no event is queued.
    [[nodiscard]] std::error_code try_event(ConnectionEvent& out) { return next_event(out, clock::duration::zero()); }

    /// Counters of the connection registered under `id`; error: not_found. The form
    /// with `ec` sets it; the other throws std::system_error.
    ///@{
    ConnectionStats stats(const std::string& id, std::error_code& ec) const {
        if (!owner_) return (ec = errc::shut_down), ConnectionStats();
        return owner_->core->stats(id, ec);
    }
    ConnectionStats stats(const std::string& id) const {
        return detail::or_throw("mesh stats", id, [&](std::error_code& ec) { return stats(id, ec); });
    }
    ///@}
    /// Totals over every connection the mesh has had.
    ConnectionStats stats() const { return owner_ ? owner_->core->total_stats() : ConnectionStats(); }
    /// The ids registered now, sorted. An added connection that died stays until it is
    /// removed; an accepted one is forgotten when it dies. Empty once shut down.
    std::vector<std::string> ids() const { return is_shut_down() ? std::vector<std::string>() : core().ids(); }

    /// Wakes every receiver with shut_down, closes every connection and joins the
    /// reactor thread. Queued outgoing messages are discarded and counted. Later calls
    /// return an empty report, and so does a call from the reactor thread (an id rule),
    /// which only begins the shutdown.
    ShutdownReport shutdown() { return shutdown(clock::duration::zero()); }

    /// Graceful: queued outgoing messages get up to `flush` to be written first.
    template <class Rep, class Period>
    ShutdownReport shutdown(std::chrono::duration<Rep, Period> flush) {
        if (!owner_) return {};
        return core().shutdown(std::chrono::duration_cast<clock::duration>(flush));
    }

    /// True once a shutdown has begun.
    bool is_shut_down() const { return !owner_ || owner_->core->is_shut_down(); }

    /// A handle offering add and remove; it holds a copy of this mesh.
    LifeCycle get_life_cycle() const { return LifeCycle(*this); }
    /// A handle offering send; it holds a copy of this mesh.
    Sender get_sender() const { return Sender(*this); }
    /// A handle offering recv, recv_timeout and try_recv; it holds a copy of this mesh.
    Receiver get_receiver() const { return Receiver(*this); }

private:
    // Owned by the copies; the last one to go shuts the reactor down (on the
    // application's io_context it only begins: that io_context may not be running).
    struct Owner {
        explicit Owner(std::shared_ptr<Core> started) : core(std::move(started)) {}
        ~Owner() { core->shutdown(clock::duration::zero(), !core->on_external_io()); }
        std::shared_ptr<Core> core;
    };

    Core& core() const { return *owner_->core; }
    std::shared_ptr<Core> core_ptr() const { return owner_ ? owner_->core : nullptr; }

    [[nodiscard]] std::error_code recv_until(Envelope* out, std::size_t max, std::size_t& taken, clock::time_point deadline) {
        taken = 0;
        if (!owner_) return errc::shut_down;
        return core().recv(out, max, taken, deadline);
    }

    std::shared_ptr<Owner> owner_;
    detail::Scope scope_;
};

/// Sends to one connection without looking its id up. Does not keep the mesh running.
template <class Transport, class Config>
class Mesh<Transport, Config>::ConnectionSender {
public:
    /// Bound to nothing: send returns not_found.
    ConnectionSender() = default;

    /// Queues the payload for the bound connection, with Mesh::send's errors (not_found
    /// once it was removed); on failure `payload` is untouched.
    SendResult send(Payload&& payload) {
        if (!core_) return {errc::not_found, {}};
        return core_->send_to(state_, payload);
    }
    /// Copies the bytes into the queue, as Mesh::send(id, bytes).
    SendResult send(std::string_view bytes) { return send(bytes.data(), bytes.size()); }
    /// As send(bytes), for the `size` bytes at `data`.
    SendResult send(const void* data, std::size_t size) {
        if (!core_) return {errc::not_found, {}};
        return core_->send_copy(data, size, [&](Payload& payload) { return core_->send_to(state_, payload); });
    }
    /// As Mesh::async_send, to the bound connection (not_found once it was removed).
    template <class Token>
    auto async_send(Payload&& payload, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code)>(
            [core = core_, state = state_, scope = scope_.id](auto handler, Payload message) {
                detail::start_async<>(core, scope, std::move(handler), [&](Core& c, auto op, auto slot) {
                    c.async_send_to(state, std::move(message), std::move(op), slot);
                }, errc::not_found);
            },
            token, std::move(payload));
    }
    /// As Mesh::cancel, for the operations this sender started.
    void cancel() {
        if (core_ && state_) {
            auto lock = state_->send_waiters.lock();
            state_->send_waiters.cancel_scope(scope_.id);
        }
    }

    /// The bound connection's id; empty when bound to nothing.
    const std::string& id() const {
        static const std::string none;
        return state_ ? state_->id : none;
    }

private:
    friend class Mesh;
    ConnectionSender(std::shared_ptr<Core> core, typename Core::StatePtr state)
        : core_(std::move(core)), state_(std::move(state)) {}

    std::shared_ptr<Core> core_;
    typename Core::StatePtr state_;
    detail::Scope scope_;
};

/// The add and remove part of a Mesh.
/// Capability handles mirroring Splinter's matrix traits: each wraps a mesh copy and
/// offers one part of the API, so a component gets only what it needs.
template <class Transport, class Config>
class Mesh<Transport, Config>::LifeCycle {
public:
    /// Wraps `mesh` (a copy, which keeps it running).
    explicit LifeCycle(Mesh mesh) : mesh_(std::move(mesh)) {}
    /// As Mesh::add.
    ///@{
    std::uint64_t add(connection_type&& c, std::string id) { return mesh_.add(std::move(c), std::move(id)); }
    std::uint64_t add(connection_type&& c, std::string id, std::error_code& ec) {
        return mesh_.add(std::move(c), std::move(id), ec);
    }
    ///@}
    /// As Mesh::remove.
    ///@{
    [[nodiscard]] connection_type remove(const std::string& id) { return mesh_.remove(id); }
    [[nodiscard]] connection_type remove(const std::string& id, std::error_code& ec) { return mesh_.remove(id, ec); }
    ///@}

private:
    Mesh mesh_;
};

/// The sending part of a Mesh: a capability handle, as LifeCycle is.
template <class Transport, class Config>
class Mesh<Transport, Config>::Sender {
public:
    /// Wraps `mesh` (a copy, which keeps it running).
    explicit Sender(Mesh mesh) : mesh_(std::move(mesh)) {}
    /// As Mesh::send(id, payload).
    SendResult send(const std::string& id, Payload&& payload) { return mesh_.send(id, std::move(payload)); }
    /// As Mesh::send(id, bytes).
    SendResult send(const std::string& id, std::string_view bytes) { return mesh_.send(id, bytes); }
    /// As Mesh::send(id, data, size).
    SendResult send(const std::string& id, const void* data, std::size_t size) { return mesh_.send(id, data, size); }
    /// As Mesh::async_send(id, payload, token).
    template <class Token>
    auto async_send(const std::string& id, Payload&& payload, Token&& token) {
        return mesh_.async_send(id, std::move(payload), std::forward<Token>(token));
    }
    /// As Mesh::async_send(envelope, token).
    template <class Token>
    auto async_send(Envelope&& envelope, Token&& token) {
        return mesh_.async_send(std::move(envelope), std::forward<Token>(token));
    }
    /// As Mesh::cancel, for the operations this sender started.
    void cancel() { mesh_.cancel(); }

private:
    Mesh mesh_;
};

/// The receiving part of a Mesh: a capability handle, as LifeCycle is.
template <class Transport, class Config>
class Mesh<Transport, Config>::Receiver {
public:
    /// Wraps `mesh` (a copy, which keeps it running).
    explicit Receiver(Mesh mesh) : mesh_(std::move(mesh)) {}
    /// As Mesh::recv(out).
    [[nodiscard]] std::error_code recv(Envelope& out) { return mesh_.recv(out); }
    /// As Mesh::recv_timeout(out, timeout).
    template <class Rep, class Period>
    [[nodiscard]] std::error_code recv_timeout(Envelope& out, std::chrono::duration<Rep, Period> timeout) {
        return mesh_.recv_timeout(out, timeout);
    }
    /// As Mesh::try_recv(out).
    [[nodiscard]] std::error_code try_recv(Envelope& out) { return mesh_.try_recv(out); }
    /// As the batch Mesh::recv(out, max, taken).
    [[nodiscard]] std::error_code recv(Envelope* out, std::size_t max, std::size_t& taken) { return mesh_.recv(out, max, taken); }
    /// As the batch Mesh::recv_timeout(out, max, taken, timeout).
    template <class Rep, class Period>
    [[nodiscard]] std::error_code recv_timeout(Envelope* out, std::size_t max, std::size_t& taken,
                                 std::chrono::duration<Rep, Period> timeout) {
        return mesh_.recv_timeout(out, max, taken, timeout);
    }
    /// As the batch Mesh::try_recv(out, max, taken).
    [[nodiscard]] std::error_code try_recv(Envelope* out, std::size_t max, std::size_t& taken) {
        return mesh_.try_recv(out, max, taken);
    }
    /// As Mesh::async_recv(token).
    template <class Token>
    auto async_recv(Token&& token) {
        return mesh_.async_recv(std::forward<Token>(token));
    }
    /// As Mesh::cancel, for the operations this receiver started.
    void cancel() { mesh_.cancel(); }

private:
    Mesh mesh_;
};

MESH_NAMESPACE_END
