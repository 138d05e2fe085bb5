#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/ring.hpp"
#include "mesh/detail/signal.hpp"
#include "mesh/detail/deadline.hpp"
#include "mesh/detail/handler_slot.hpp"
#include "mesh/detail/inline_handler.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/endpoint.hpp"

#include <asio/bind_allocator.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

MESH_NAMESPACE_BEGIN

namespace detail {

// One direction of an in-process connection: a bounded ring of payloads that
// are moved in and out, never copied, plus the wake-ups of its two ends.
struct InprocPipe {
    static constexpr std::size_t capacity = 1024;

    Ring<Payload, capacity, false, true> ring;  // writers: a mesh's senders; one reader at a time
    Signal readable;  // the reader waits here for data or close
    Signal writable;  // the writer waits here for room or close
    std::atomic<bool> closed{false};

    void close() {
        closed.store(true, std::memory_order_seq_cst);
        readable.notify();
        writable.notify();
    }
    // A claimed but unfilled cell is not data yet: its writer notifies once it fills it.
    bool has_data_or_closed() const {
        return ring.front_ready() || closed.load(std::memory_order_acquire);
    }
    bool has_room_or_closed() const {
        return ring.has_room() || closed.load(std::memory_order_acquire);
    }
};

class InprocListenerCore;

// Names of listening endpoints, shared by copies of one Inproc transport.
class InprocRegistry {
public:
    [[nodiscard]] std::error_code bind(const std::string& name, const std::shared_ptr<InprocListenerCore>& core) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto& slot = names_[name];
        if (!slot.expired()) return errc::address_in_use;
        slot = core;
        return {};
    }
    void unbind(const std::string& name, const InprocListenerCore* core) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = names_.find(name);
        if (it != names_.end()) {
            auto current = it->second.lock();
            if (!current || current.get() == core) names_.erase(it);
        }
    }
    std::shared_ptr<InprocListenerCore> find(const std::string& name) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = names_.find(name);
        return it == names_.end() ? nullptr : it->second.lock();
    }

private:
    std::mutex mutex_;
    std::unordered_map<std::string, std::weak_ptr<InprocListenerCore>> names_;
};

} // namespace detail

/// A connection of the in-process transport. Used on its own, its blocking send and
/// recv may each be called by one thread at a time. Added to a Mesh, the mesh's
/// senders push into the peer's queue directly (try_send_direct) and the reactor
/// reads through the asynchronous members below.
class InprocConnection {
public:
    /// Not open.
    InprocConnection() = default;
    /// One end of a pair of queues; Inproc::connect makes both ends.
    InprocConnection(std::shared_ptr<detail::InprocPipe> in, std::shared_ptr<detail::InprocPipe> out,
                     std::string endpoint, std::size_t max_message_size)
        : in_(std::move(in)), out_(std::move(out)), endpoint_(std::move(endpoint)),
          max_message_size_(max_message_size) {}

    /// Moves the connection; `other` is left not open.
    InprocConnection(InprocConnection&&) = default;
    /// Disconnects this one first, then takes over `other`, which is left not open.
    InprocConnection& operator=(InprocConnection&& other) noexcept {
        if (this != &other) {
            disconnect();
            in_ = std::move(other.in_);
            out_ = std::move(other.out_);
            endpoint_ = std::move(other.endpoint_);
            max_message_size_ = other.max_message_size_;
            unread_ = std::move(other.unread_);
        }
        return *this;
    }
    /// Disconnects (see disconnect).
    ~InprocConnection() { disconnect(); }

    /// True until disconnected (or moved from).
    bool is_open() const noexcept { return in_ != nullptr; }
    /// The listener's endpoint, "inproc://name": both ends name it.
    const std::string& remote_endpoint() const noexcept { return endpoint_; }
    /// The same as remote_endpoint: the listener's "inproc://name".
    const std::string& local_endpoint() const noexcept { return endpoint_; }

    /// Blocks while the peer's queue is full. The payload is moved, not copied.
    /// Errors: not_connected, message_too_large, disconnected (the peer is gone).
    [[nodiscard]] std::error_code send(Payload&& payload) {
        if (!out_) return errc::not_connected;
        if (payload.size() > max_message_size_) return errc::message_too_large;
        auto& pipe = *out_;
        for (;;) {
            pipe.writable.wait([&] { return pipe.has_room_or_closed(); });
            if (pipe.closed.load(std::memory_order_acquire)) return errc::disconnected;
            if (pipe.ring.try_push(payload)) break;
        }
        pipe.readable.notify();
        return {};
    }
    /// Sends a copy of `payload`, as send(Payload&&).
    [[nodiscard]] std::error_code send(const Payload& payload) { return send(Payload(payload)); }

    /// Blocks until a message arrives; end_of_stream once the peer is gone and all
    /// it sent has been received.
    [[nodiscard]] std::error_code recv(Payload& out) {
        return recv_until(out, std::chrono::steady_clock::time_point::max());
    }
    /// As recv, waiting at most `timeout`: errc::timeout when nothing came.
    [[nodiscard]] std::error_code recv_for(Payload& out, std::chrono::steady_clock::duration timeout) {
        return recv_until(out, detail::deadline_after(timeout));
    }

    /// Closes both directions: the peer's recv sees end_of_stream, its send disconnected.
    /// not_connected when it was not open.
    std::error_code disconnect() {
        if (!in_) return errc::not_connected;
        detach();
        in_->close();
        out_->close();
        in_.reset();
        out_.reset();
        return {};
    }

    /// Thread-safe and non-blocking: a Mesh's senders push straight into the peer's
    /// queue with it, holding at most `limit` waiting messages (approximately, while
    /// several threads send at once). Returns {}, queue_full, message_too_large or
    /// end_of_stream.
    [[nodiscard]] std::error_code try_send_direct(Payload& payload, std::size_t limit) {
        if (payload.size() > max_message_size_) return errc::message_too_large;
        auto& pipe = *out_;
        if (pipe.closed.load(std::memory_order_acquire)) return errc::end_of_stream;
        if ((limit < detail::InprocPipe::capacity && pipe.ring.size() >= limit) || !pipe.ring.try_push(payload))
            return errc::queue_full;
        pipe.readable.notify();
        return {};
    }

    /// Sent with try_send_direct and not yet taken by the peer: a mesh's outgoing queue depth.
    std::size_t direct_queue_depth() const noexcept { return out_ ? out_->ring.size() : 0; }

    /// A mesh always sends with try_send_direct: there is no reactor writer to hand batches to.
    static constexpr bool sends_directly() noexcept { return true; }

    // ---- Driven by a Mesh's reactor (one thread) between attach and detach ----

    /// Hands the connection to a Mesh's reactor: arrivals wake it on `io`. Its own
    /// size limit stays; the mesh checks `max_message_size` before every send.
    void attach(asio::io_context& io, std::size_t max_message_size) {
        io_ = &io;
        cancelled_ = false;
        // max_message_size_ stays as is: the mesh checks its own limit before every send,
        // and senders on other threads read this one in try_send_direct (no write races them).
        (void)max_message_size;
        // The fill wake-up is posted from the peer's sending thread, where Asio's handler
        // cache does not reach: one is armed at a time, so one slot holds it.
        if (!fill_slot_) fill_slot_ = std::make_unique<detail::HandlerSlot>();
        in_->readable.set_callback([this] {
            asio::post(*io_, asio::bind_allocator(detail::SlotAllocator<void>(*fill_slot_), [this] { complete_fill(); }));
        });
        out_->writable.set_callback([this] { asio::post(*io_, [this] { complete_room(); }); });
    }

    /// Gives back a message that was read but not delivered: the next take returns it.
    void unread(Payload&& payload) { unread_.emplace(std::move(payload)); }

    /// Takes the next received message, if one is waiting. At the end of the stream
    /// it returns false with ec = end_of_stream.
    bool try_take(Payload& out, std::error_code& ec) {
        if (unread_) {
            out = std::move(*unread_);
            unread_.reset();
            return true;
        }
        if (in_->ring.try_pop(out) ||
            // what the peer sent before closing is still delivered
            (in_->closed.load(std::memory_order_acquire) && in_->ring.try_pop(out))) {
            in_->writable.notify();
            return true;
        }
        if (in_->closed.load(std::memory_order_acquire)) ec = errc::end_of_stream;
        return false;
    }

    /// Calls handler(error_code) on the reactor when try_take may have more to give.
    template <class Handler>
    void async_fill(Handler&& handler) {
        fill_handler_.emplace(std::forward<Handler>(handler));
        in_->readable.arm();
        if (in_->has_data_or_closed() && in_->readable.disarm())
            asio::post(*io_, [this] { complete_fill(); });
    }

    /// Calls handler(error_code) on the reactor once the peer holds fewer than `limit`
    /// messages sent with try_send_direct, or the connection closed: a wait for room.
    template <class Handler>
    void async_room(std::size_t limit, Handler&& handler) {
        room_handler_.emplace(std::forward<Handler>(handler));
        room_limit_ = std::min(limit, detail::InprocPipe::capacity);
        out_->writable.arm();
        if (has_room() && out_->writable.disarm()) asio::post(*io_, [this] { complete_room(); });
    }

    /// Pending asynchronous operations complete with operation_aborted.
    void cancel() {
        if (!io_) return;
        cancelled_ = true;
        if (fill_handler_ && in_->readable.disarm()) asio::post(*io_, [this] { complete_fill(); });
        if (room_handler_ && out_->writable.disarm()) asio::post(*io_, [this] { complete_room(); });
    }

    /// Back to standalone use; called when no asynchronous operation is pending.
    void detach() {
        if (!io_) return;
        in_->readable.set_callback(nullptr);
        out_->writable.set_callback(nullptr);
        io_ = nullptr;
    }

private:
    [[nodiscard]] std::error_code recv_until(Payload& out, std::chrono::steady_clock::time_point deadline) {
        if (unread_) {
            out = std::move(*unread_);
            unread_.reset();
            return {};
        }
        if (!in_) return errc::not_connected;
        auto& pipe = *in_;
        if (!pipe.readable.wait_until([&] { return pipe.has_data_or_closed(); }, deadline))
            return errc::timeout;
        // Only a filled cell counts as data, so this pop fails only when the pipe closed
        // with nothing left.
        if (!pipe.ring.try_pop(out)) return errc::end_of_stream;
        pipe.writable.notify();
        return {};
    }

    void complete_fill() {
        if (fill_handler_) fill_handler_(cancelled_ ? std::error_code(asio::error::operation_aborted) : std::error_code());
    }

    bool has_room() const {
        return out_->ring.size() < room_limit_ || out_->closed.load(std::memory_order_acquire);
    }

    // The peer took a message: done when there is room by our limit, else armed again.
    void complete_room() {
        if (!room_handler_) return;
        if (!cancelled_) {
            out_->writable.arm();
            if (!has_room() || !out_->writable.disarm()) return;  // still full, or a notify is on its way
        }
        room_handler_(cancelled_ ? std::error_code(asio::error::operation_aborted) : std::error_code());
    }

    std::shared_ptr<detail::InprocPipe> in_, out_;
    std::string endpoint_;
    std::size_t max_message_size_ = 0;

    asio::io_context* io_ = nullptr;
    bool cancelled_ = false;
    std::optional<Payload> unread_;
    detail::InlineHandler fill_handler_;
    detail::InlineHandler room_handler_;
    std::size_t room_limit_ = 0;
    std::unique_ptr<detail::HandlerSlot> fill_slot_;
};

namespace detail {

class InprocListenerCore {
public:
    [[nodiscard]] std::error_code push(InprocConnection&& connection) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (closed_) return errc::connection_refused;
        backlog_.push_back(std::move(connection));
        cv_.notify_one();
        // Under the lock, so that once close() returns no notification is still on its way.
        if (on_push_) on_push_();
        return {};
    }

    // Asynchronous accepting: on_push runs on the connecting thread after each push (keep
    // it short: a post), and at once if connections are already waiting; try_pop takes them.
    void set_on_push(std::function<void()> on_push) {
        std::lock_guard<std::mutex> lock(mutex_);
        on_push_ = std::move(on_push);
        if (on_push_ && !backlog_.empty()) on_push_();
    }
    bool try_pop(InprocConnection& out) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (backlog_.empty()) return false;
        out = std::move(backlog_.front());
        backlog_.pop_front();
        return true;
    }
    [[nodiscard]] std::error_code pop(InprocConnection& out, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!cv_.wait_until(lock, deadline, [&] { return closed_ || !backlog_.empty(); }))
            return errc::timeout;
        if (backlog_.empty()) return errc::not_connected;
        out = std::move(backlog_.front());
        backlog_.pop_front();
        return {};
    }
    void close() {
        std::deque<InprocConnection> dropped;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            closed_ = true;
            dropped.swap(backlog_);
            on_push_ = nullptr;
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<InprocConnection> backlog_;
    bool closed_ = false;
    std::function<void()> on_push_;
};

} // namespace detail

/// A listening name of the in-process transport (Inproc::listen). Connections wait
/// in its backlog until accepted.
class InprocListener {
public:
    using connection_type = InprocConnection;  ///< what accept returns

    /// Listens on nothing: accept fails with not_connected.
    InprocListener() = default;
    /// Holds `name` in `registry` until closed; Inproc::listen makes it.
    InprocListener(std::shared_ptr<detail::InprocRegistry> registry, std::string name,
                   std::shared_ptr<detail::InprocListenerCore> core)
        : registry_(std::move(registry)), name_(std::move(name)), core_(std::move(core)) {}
    /// Moves the listener; `other` then listens on nothing.
    InprocListener(InprocListener&&) = default;
    /// Closes this one first, then takes over `other`, which then listens on nothing.
    InprocListener& operator=(InprocListener&& other) noexcept {
        if (this != &other) {
            close();
            registry_ = std::move(other.registry_);
            name_ = std::move(other.name_);
            core_ = std::move(other.core_);
        }
        return *this;
    }
    /// Closes it (see close).
    ~InprocListener() { close(); }

    /// "inproc://name".
    std::string endpoint() const { return "inproc://" + name_; }

    /// Blocks until a peer connects. Error: not_connected once closed (or never
    /// listening). The first form throws std::system_error; the second sets `ec` and
    /// returns a connection that is not open.
    ///@{
    InprocConnection accept() {
        return detail::or_throw("accept", endpoint(), [&](std::error_code& ec) { return accept(ec); });
    }
    InprocConnection accept(std::error_code& ec) {
        return accept_until(std::chrono::steady_clock::time_point::max(), ec);
    }
    ///@}
    /// As accept(ec), waiting at most `timeout`: errc::timeout when nobody connected.
    InprocConnection accept_for(std::chrono::steady_clock::duration timeout, std::error_code& ec) {
        return accept_until(detail::deadline_after(timeout), ec);
    }

    /// Frees the name; connections not yet accepted are closed.
    void close() {
        if (!core_) return;
        registry_->unbind(name_, core_.get());
        core_->close();
        core_.reset();
    }

    // ---- Driven by a Mesh's reactor ----

    /// Until close(), hands each connection to on_connection(InprocConnection&&) on `io`,
    /// including those that connected before this was called.
    template <class OnConnection>
    void async_accept_loop(asio::io_context& io, OnConnection on_connection) {
        if (!core_) return;
        auto deliver = std::make_shared<OnConnection>(std::move(on_connection));
        std::weak_ptr<detail::InprocListenerCore> weak = core_;  // the core must not own itself
        core_->set_on_push([&io, weak, deliver] {
            asio::post(io, [weak, deliver] {
                auto core = weak.lock();
                InprocConnection connection;
                while (core && core->try_pop(connection)) (*deliver)(std::move(connection));
            });
        });
    }

private:
    InprocConnection accept_until(std::chrono::steady_clock::time_point deadline, std::error_code& ec) {
        InprocConnection connection;
        ec = core_ ? core_->pop(connection, deadline) : make_error_code(errc::not_connected);
        return connection;
    }

    std::shared_ptr<detail::InprocRegistry> registry_;
    std::string name_;
    std::shared_ptr<detail::InprocListenerCore> core_;
};

/// The in-process transport: "inproc://name" (or a bare name). Copies share one
/// namespace of names; separately constructed transports have separate ones.
class Inproc {
public:
    using connection_type = InprocConnection;  ///< what connect returns and a listener accepts
    using listener_type = InprocListener;      ///< what listen returns

    /// A transport with a namespace of its own; its connections refuse payloads
    /// above `max_message_size`.
    explicit Inproc(std::size_t max_message_size = 16 * 1024 * 1024)
        : registry_(std::make_shared<detail::InprocRegistry>()), max_message_size_(max_message_size) {}

    /// True for an "inproc://" endpoint, and for a non-empty one without a scheme.
    static bool accepts(std::string_view endpoint) {
        const auto scheme = detail::endpoint_scheme(endpoint);
        return scheme.empty() ? !endpoint.empty() : scheme == "inproc";
    }

    /// Takes the name `bind` gives in this transport's namespace. Errors:
    /// unknown_scheme, invalid_endpoint (no name), address_in_use (the name is taken).
    /// The first form throws std::system_error; the second sets `ec` and returns a
    /// listener that listens on nothing.
    ///@{
    InprocListener listen(std::string_view bind) {
        return detail::or_throw("listen", bind, [&](std::error_code& ec) { return listen(bind, ec); });
    }
    InprocListener listen(std::string_view bind, std::error_code& ec) {
        std::string name;
        if ((ec = parse(bind, name))) return {};
        auto core = std::make_shared<detail::InprocListenerCore>();
        if ((ec = registry_->bind(name, core))) return {};
        return InprocListener(registry_, std::move(name), std::move(core));
    }
    ///@}

    /// Connects at once, with no handshake: the other end waits in the listener's
    /// backlog until accepted. Errors: unknown_scheme, invalid_endpoint,
    /// connection_refused (nobody listens on the name). The first form throws
    /// std::system_error; the second sets `ec` and returns a connection that is not open.
    ///@{
    InprocConnection connect(std::string_view endpoint) {
        return detail::or_throw("connect", endpoint, [&](std::error_code& ec) { return connect(endpoint, ec); });
    }
    InprocConnection connect(std::string_view endpoint, std::error_code& ec) {
        std::string name;
        if ((ec = parse(endpoint, name))) return {};
        auto listener = registry_->find(name);
        if (!listener) {
            ec = errc::connection_refused;
            return {};
        }
        auto to_server = std::make_shared<detail::InprocPipe>();
        auto to_client = std::make_shared<detail::InprocPipe>();
        const std::string full = "inproc://" + name;
        InprocConnection server(to_server, to_client, full, max_message_size_);
        if ((ec = listener->push(std::move(server)))) return {};
        return InprocConnection(to_client, to_server, full, max_message_size_);
    }
    ///@}

private:
    static std::error_code parse(std::string_view endpoint, std::string& name) {
        if (!accepts(endpoint)) return errc::unknown_scheme;
        name = std::string(detail::endpoint_address(endpoint));
        if (name.empty()) return errc::invalid_endpoint;
        return {};
    }

    std::shared_ptr<detail::InprocRegistry> registry_;
    std::size_t max_message_size_;
};

MESH_NAMESPACE_END
