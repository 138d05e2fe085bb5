#pragma once

#include "mesh/version.hpp"
#include "mesh/config.hpp"
#include "mesh/core/connection_state.hpp"
#include "mesh/core/events.hpp"
#include "mesh/core/incoming_queue.hpp"
#include "mesh/core/stats.hpp"
#include "mesh/detail/liveness.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/send_result.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/bind_allocator.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/system_executor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

MESH_NAMESPACE_BEGIN

/// What shutdown did with messages it could not deliver.
struct ShutdownReport {
    std::size_t discarded_outgoing = 0;  ///< accepted by send, never written
    std::size_t discarded_incoming = 0;  ///< received, never taken by recv
};

namespace detail {

inline bool is_protocol_error(const std::error_code& ec) {
    return ec == errc::bad_checksum || ec == errc::unsupported_version ||
           ec == errc::message_too_large || ec == errc::truncated_frame;
}

// The default id rule of accept_from: the remote endpoint. Ids it gives are made
// unique (a "#n" suffix) when the endpoint names a connection already registered.
struct RemoteEndpointId {
    template <class Connection>
    std::string operator()(const Connection& connection) const {
        return std::string(connection.remote_endpoint());
    }
};

// The state shared by every copy of a Mesh, and the reactor that drives it.
// Members marked "reactor" are touched only on the reactor thread, so they need no
// lock; callers reach them by posting to the io_context.
template <class Transport, class Config>
class MeshCore : public std::enable_shared_from_this<MeshCore<Transport, Config>> {
public:
    using Connection = typename Transport::connection_type;
    using State = ConnectionState<Connection, Config>;
    using StatePtr = std::shared_ptr<State>;
    using clock = std::chrono::steady_clock;
    // False when every connection sends directly: the reactor's writer (start_write and
    // the connection's async_write_batch) is then never needed, nor compiled.
    static constexpr bool uses_writer = !always_sends_directly<Connection>::value;

    // The reactor thread holds a reference until its loop has returned, so the core
    // (and its io_context) is never destroyed under a running handler, whichever
    // thread lets go of it last.
    static std::shared_ptr<MeshCore> start() {
        auto core = std::make_shared<MeshCore>(nullptr);
        core->thread_ = std::thread([self = core]() mutable {
            self->run();
            self.reset();  // may destroy the core here, after the loop returned
        });
        core->reactor_id_ = core->thread_.get_id();
        return core;
    }

    // On the application's io_context, whose threads run the reactor. The core holds
    // itself until its shutdown is done, so no handler of its outlives it; until then
    // it keeps work on `io` (a run() returns once the mesh is shut down).
    static std::shared_ptr<MeshCore> start_on(asio::io_context& io) {
        auto core = std::make_shared<MeshCore>(&io);
        core->self_ = core;
        return core;
    }

    explicit MeshCore(asio::io_context* external)
        : own_io_(external ? nullptr : std::make_unique<asio::io_context>()), io_(external ? *external : *own_io_),
          work_(asio::make_work_guard(io_)),
          default_executor_(external ? asio::any_io_executor(io_.get_executor())
                                     : asio::any_io_executor(asio::system_executor())) {
        schedule_park_sweep();
    }

    ~MeshCore() {
        shutdown(clock::duration::zero());
        if (thread_.joinable()) thread_.detach();  // destroyed by the reactor thread itself, past its loop
    }

    MeshCore(const MeshCore&) = delete;
    MeshCore& operator=(const MeshCore&) = delete;

    bool is_shut_down() const noexcept { return shut_down_.load(std::memory_order_acquire); }
    bool on_reactor_thread() const noexcept {
        return own_io_ ? std::this_thread::get_id() == reactor_id_ : io_.get_executor().running_in_this_thread();
    }

    // Where handlers without an executor of their own run: the application's
    // io_context when the mesh runs on it, else the system executor's threads.
    const asio::any_io_executor& default_executor() const noexcept { return default_executor_; }

    // ---- control, from any thread ----

    std::uint64_t add(Connection&& connection, std::string id, std::error_code& ec) {
        std::unique_lock<std::shared_mutex> lock(map_mutex_);
        if (is_shut_down()) {
            ec = errc::shut_down;
            return 0;
        }
        if (!connection.is_open()) {
            ec = errc::not_connected;  // e.g. a failed connect: the reactor cannot drive it
            return 0;
        }
        if (by_id_.count(id) != 0) {
            ec = errc::duplicate_id;  // the connection stays with the caller
            return 0;
        }
        const std::uint64_t key = ++next_key_;
        auto state = std::make_shared<State>(id, key, std::move(connection), false);
        by_id_.emplace(std::move(id), state);
        // Posted under the lock so that a shutdown or remove that follows is queued after it.
        asio::post(io_, [this, state] { attach(state); });
        ec = {};
        return key;
    }

    // Waits for the reactor without holding any lock. On the reactor thread (an id
    // rule) it would wait on itself: refused with on_reactor_thread.
    Connection remove(const std::string& id, std::error_code& ec) {
        if (on_reactor_thread()) {
            ec = errc::on_reactor_thread;
            return Connection();
        }
        StatePtr state;
        std::promise<void> done;
        {
            std::unique_lock<std::shared_mutex> lock(map_mutex_);
            if (is_shut_down()) {
                ec = errc::shut_down;
                return Connection();
            }
            auto it = by_id_.find(id);
            if (it == by_id_.end()) {
                ec = errc::not_found;
                return Connection();
            }
            state = std::move(it->second);
            by_id_.erase(it);
            asio::post(io_, [this, state, &done] { begin_remove(state, done); });
        }
        done.get_future().wait();
        retired_.add_from(state->counters);
        ec = {};
        return std::move(state->connection);
    }

    // A dialer's add: adds `connection` under `id`, or puts it in the place of
    // `previous` (the dialer's last connection there, which has settled: the dialer
    // waited for that) in one step under the map lock, so a send sees the old one's
    // disconnected until the new one is in. Errors: shut_down, duplicate_id (another
    // connection holds the id).
    std::error_code redial(Connection&& connection, const std::string& id, std::weak_ptr<State>& previous,
                           const std::shared_ptr<DialWatch>& watch) {
        StatePtr old;
        {
            std::unique_lock<std::shared_mutex> lock(map_mutex_);
            if (is_shut_down()) return errc::shut_down;
            auto it = by_id_.find(id);
            if (it != by_id_.end() && it->second != previous.lock()) return errc::duplicate_id;
            auto state = std::make_shared<State>(id, ++next_key_, std::move(connection), false);
            state->watch = watch;
            if (it != by_id_.end()) {
                old = std::exchange(it->second, state);
                // Sends waiting for this connection go to the new one, in their order;
                // attach queues them.
                auto waiting = old->send_waiters.lock();
                while (!old->send_waiters.empty()) state->send_waiters.enlist(old->send_waiters.pop_front());
                old->handed_over = true;
            } else {
                by_id_.emplace(id, state);
            }
            previous = state;
            asio::post(io_, [this, state] { attach(state); });
        }
        if (old) retired_.add_from(old->counters);
        return {};
    }

    void dial_event(ConnectionEvent::Kind kind, const std::string& id, std::error_code reason) {
        ConnectionEvent event;
        event.kind = kind;
        event.id = id;
        event.reason = reason;
        events_.push(std::move(event));
    }

    // Accepts on the reactor from now on; each connection is added under rule(connection)
    // and announced by a connected event. An id already in use is a refused event
    // (RemoteEndpointId instead makes its ids unique).
    template <class Listener, class IdRule>
    void accept_from(Listener&& listener, IdRule rule, std::error_code& ec) {
        static_assert(!std::is_lvalue_reference<Listener>::value,
                      "accept_from takes the listener over: pass it as an rvalue (std::move)");
        std::unique_lock<std::shared_mutex> lock(map_mutex_);
        if (is_shut_down()) {
            ec = errc::shut_down;
            return;
        }
        auto owned = std::make_shared<std::decay_t<Listener>>(std::move(listener));
        asio::post(io_, [this, owned, rule = std::move(rule)]() mutable {
            listener_closers_.emplace_back([owned] { owned->close(); });
            owned->async_accept_loop(io_, [this, rule](Connection&& connection) mutable {
                std::string id = rule(static_cast<const Connection&>(connection));
                adopt(std::move(connection), std::move(id), std::is_same<IdRule, RemoteEndpointId>::value);
            });
        });
        ec = {};
    }

    StatePtr find(const std::string& id) const {
        std::shared_lock<std::shared_mutex> lock(map_mutex_);
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : it->second;
    }

    // ---- data, from any thread ----

    SendResult send(const std::string& id, Payload& payload) {
        if (payload.size() > Config::max_message_size) return {errc::message_too_large, {}};
        std::shared_lock<std::shared_mutex> lock(map_mutex_);
        if (is_shut_down()) return {errc::shut_down, {}};
        auto it = by_id_.find(id);
        if (it == by_id_.end()) return {errc::not_found, {}};
        return push(it->second, payload);
    }

    // The caller keeps `state` alive for the duration of the call.
    SendResult send_to(const StatePtr& state, Payload& payload) {
        if (payload.size() > Config::max_message_size) return {errc::message_too_large, {}};
        return push(state, payload);
    }

    // A copy of `size` bytes, sent with send(payload) (send or send_to): above the
    // inline size it goes into a spare buffer, and back to the spares if refused.
    template <class Send>
    SendResult send_copy(const void* data, std::size_t size, Send&& send) {
        if (size > Config::max_message_size) return {errc::message_too_large, {}};
        Payload payload = spare_buffers_->copy(data, size);
        SendResult result = send(payload);
        if (!result.ok()) spare_buffers_->give(payload);
        return result;
    }

    std::error_code recv(Envelope* out, std::size_t max, std::size_t& taken, clock::time_point deadline) {
        if (on_reactor_thread()) {  // it would wait on itself
            const auto ec = try_recv(out, max, taken);
            return ec == errc::would_block ? make_error_code(errc::on_reactor_thread) : ec;
        }
        return incoming_.pop(out, max, taken, deadline, [this] { post_resume(); });
    }

    std::error_code try_recv(Envelope* out, std::size_t max, std::size_t& taken) {
        return incoming_.try_pop(out, max, taken, [this] { post_resume(); });
    }

    std::error_code next_event(ConnectionEvent& out, clock::time_point deadline) {
        if (on_reactor_thread() && deadline > clock::now()) return errc::on_reactor_thread;
        return events_.pop(out, deadline);
    }

    // ---- asynchronous operations, from any thread ----
    // Each completes its operation exactly once (posted to the handler's executor):
    // at once, or later from whichever thread makes it possible, or cancelled.

    void async_recv(std::unique_ptr<AsyncOp<Envelope>> op, asio::cancellation_slot slot) {
        incoming_.async_pop(std::move(op), slot, this->shared_from_this(), [this] { post_resume(); });
    }

    void async_next_event(std::unique_ptr<AsyncOp<ConnectionEvent>> op, asio::cancellation_slot slot) {
        events_.async_pop(std::move(op), slot, this->shared_from_this());
    }

    void async_send(const std::string& id, Payload&& payload, std::unique_ptr<AsyncOp<>> op,
                    asio::cancellation_slot slot) {
        StatePtr state;
        {
            std::shared_lock<std::shared_mutex> lock(map_mutex_);
            if (is_shut_down()) return op->complete(errc::shut_down);
            auto it = by_id_.find(id);
            if (it == by_id_.end()) return op->complete(errc::not_found);
            state = it->second;
        }
        async_send_to(state, std::move(payload), std::move(op), slot);
    }

    // Queued at once when there is room and no earlier async_send of this connection
    // waits; else it waits in line, and whoever makes room (the writer, or for a direct
    // send the reactor told by the peer) queues it. A blocking send does not wait in
    // that line.
    void async_send_to(const StatePtr& state, Payload&& payload, std::unique_ptr<AsyncOp<>> op,
                       asio::cancellation_slot slot) {
        if (payload.size() > Config::max_message_size) return op->complete(errc::message_too_large);
        State& s = *state;
        auto lock = s.send_waiters.lock();
        if (s.send_waiters.empty()) {
            const SendResult result = push(state, payload);
            if (!waits(s, result.error)) return op->complete(result.error);
        }
        connect_cancellation(slot, s.send_waiters, state, op->tag.id);
        s.send_waiters.enlist(SendWaiter{std::move(op), std::move(payload)});
        serve_sends(state);  // room made before we were listed
    }

    // Completes the waiting operations started by the handle `scope` with operation_aborted.
    void cancel(std::uint64_t scope) {
        incoming_.cancel(scope);
        events_.cancel(scope);
        for (const auto& state : registered()) {
            auto lock = state->send_waiters.lock();
            state->send_waiters.cancel_scope(scope);
        }
    }

    ConnectionStats stats(const std::string& id, std::error_code& ec) {
        ConnectionStats s;
        auto state = find(id);
        if (!state) {
            ec = errc::not_found;
            return s;
        }
        state->counters.add_to(s);
        s.queue_depth = queue_depth(state);
        s.queue_memory = state->outgoing.storage_bytes();
        s.connections = 1;
        ec = {};
        return s;
    }

    // The connections registered now, for work done on each outside the map's lock.
    std::vector<StatePtr> registered() const {
        std::vector<StatePtr> states;
        std::shared_lock<std::shared_mutex> lock(map_mutex_);
        states.reserve(by_id_.size());
        for (const auto& entry : by_id_) states.push_back(entry.second);
        return states;
    }

    std::vector<std::string> ids() const {
        std::vector<std::string> out;
        {
            std::shared_lock<std::shared_mutex> lock(map_mutex_);
            out.reserve(by_id_.size());
            for (const auto& entry : by_id_) out.push_back(entry.first);
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    ConnectionStats total_stats() {
        ConnectionStats s;
        retired_.add_to(s);
        const std::vector<StatePtr> states = registered();
        for (const auto& state : states) {
            state->counters.add_to(s);
            s.queue_depth += queue_depth(state);
            s.queue_memory += state->outgoing.storage_bytes();
        }
        s.connections = states.size();
        s.refused = refused_.load(std::memory_order_relaxed);
        s.events_dropped = events_.dropped();
        s.spare_buffers = spare_buffers_->size();
        return s;
    }

    // Receivers return shut_down at once; queued outgoing messages get up to
    // `flush` to be written; the reactor thread is joined. Later calls return an
    // empty report. On the reactor thread (an id rule) it only begins: the reactor
    // cannot wait for itself, so it returns an empty report at once and its thread
    // ends by itself when the shutdown is done.
    ShutdownReport shutdown(clock::duration flush, bool wait = true) {
        {
            // Held briefly and never while waiting on the reactor, so the reactor may take it.
            std::lock_guard<std::mutex> begin(begin_mutex_);
            if (!shutdown_begun_) {
                shutdown_begun_ = true;
                auto report = std::make_shared<std::promise<ShutdownReport>>();
                report_future_ = report->get_future();
                {
                    std::unique_lock<std::shared_mutex> lock(map_mutex_);
                    shut_down_.store(true, std::memory_order_release);
                    asio::post(io_, [this, flush, report] { begin_shutdown(flush, report); });
                }
                incoming_.close();
                events_.close();
            }
        }
        if (on_reactor_thread() || !wait) return {};
        std::lock_guard<std::mutex> once(join_mutex_);
        if (own_io_) {
            if (!thread_.joinable()) return {};
            thread_.join();
        } else if (!report_future_.valid()) {
            return {};
        }
        return report_future_.get();
    }

    // True when the mesh runs on the application's io_context.
    bool on_external_io() const noexcept { return !own_io_; }

private:
    SendResult push(const StatePtr& state, Payload& payload, bool retry = false) {
        SendNotice notice;
        SendResult result = state->try_send(payload, notice, retry);
        notify(state, notice);
        return result;
    }

    // Under the connection's send_waiters lock: queues waiting async_sends in order
    // while there is room; those refused for anything but a full queue complete with it.
    // A direct send has no writer to make room, so then the reactor watches for it.
    void serve_sends(const StatePtr& state) {
        auto& waiters = state->send_waiters;
        while (!waiters.empty()) {
            const SendResult result = push(state, waiters.front().payload, true);
            if (!waits(*state, result.error)) {
                waiters.pop_front().fail(result.error);
                continue;
            }
            if constexpr (has_direct_send<Connection>::value) {
                if (result.error == errc::queue_full && state->sends_directly()) want_room(state);
            }
            break;
        }
    }

    // Under the send_waiters lock: whether an async_send refused with `error` waits.
    // It waits for room, and, on a dialer's connection that ended, for the dialer's
    // next connection (redial hands the line over), unless the dialer stopped or the
    // mesh shuts down.
    bool waits(const State& s, const std::error_code& error) const {
        if (error == errc::queue_full) return true;
        return error == errc::disconnected && s.watch && !s.handed_over && s.send_closed() &&
               s.close_error() == errc::disconnected && !is_shut_down() && !s.watch->stopped();
    }

    // Sending to the connection is closed: its waiting async_sends get what a send
    // gets, unless they wait for a dialer's next connection (waits()).
    void release_sends(State& s) {
        auto lock = s.send_waiters.lock();
        if (!s.send_closed() || s.send_waiters.empty() || waits(s, s.close_error())) return;
        s.send_waiters.fail_all(is_shut_down() ? make_error_code(errc::shut_down) : s.close_error());
    }

public:
    // A dialer stopped (or its mesh shut down): sends waiting for its next connection
    // on `last`, the connection it added last, complete.
    void end_dial(const std::weak_ptr<State>& last) {
        if (auto state = last.lock()) release_sends(*state);
    }

private:

    // A direct send has no writer to make room: the reactor asks the connection to say
    // when its peer took messages. Posted at most once until the reactor has seen it.
    void want_room(const StatePtr& state) {
        if (!state->room_wanted.exchange(true, std::memory_order_acq_rel))
            asio::post(io_, [weak = this->weak_from_this(), state] {
                if (auto self = weak.lock()) self->watch_room(state);
            });
    }

    void watch_room(const StatePtr& state) {
        static_assert(has_direct_send<Connection>::value, "only direct sends wait for room this way");
        State& s = *state;
        s.room_wanted.store(false, std::memory_order_release);
        if (s.phase != Phase::open || s.room_pending) return;
        s.room_pending = true;
        s.connection.async_room(Config::outgoing_capacity, [this, state](std::error_code) {
            State& st = *state;
            st.room_pending = false;
            if (st.ending()) return settle(state);
            auto lock = st.send_waiters.lock();
            serve_sends(state);  // watches again while the queue is still full
        });
    }

    std::size_t queue_depth(const StatePtr& state) {
        SendNotice notice;
        const std::size_t depth = state->queue_depth(notice.senders_left);
        notify(state, notice);
        return depth;
    }

    // Both posts use the connection's own handler slots: at most one of each kind is
    // ever in flight, so they allocate nothing.
    void notify(const StatePtr& state, const SendNotice& notice) noexcept {
        if constexpr (uses_writer) {
            if (notice.wake_writer) {  // never set by a direct send
                try {
                    post_from_caller(state->wake_slot, [this, state] { start_write(state); });
                } catch (...) {
                    state->wake_failed();
                    wakeups_lost_.store(true, std::memory_order_release);  // after wake_failed's store
                }
            }
        }
        // Sent once per connection, into a free slot: this post cannot fail.
        if (notice.senders_left) post_from_caller(state->leave_slot, [this, state] { on_senders_left(state); });
    }

    // Posts f to the reactor from a caller's thread, into `slot` (no allocation). On the
    // application's io_context the handler also holds the core: a caller may post just
    // as a shutdown finishes, and the handler must not outlive the core. The library's
    // own io_context never runs such a late handler, only destroys it with the core.
    template <class F>
    void post_from_caller(HandlerSlot& slot, F&& f) {
        if (own_io_) {
            asio::post(io_, asio::bind_allocator(SlotAllocator<void>(slot), std::forward<F>(f)));
        } else {
            asio::post(io_, asio::bind_allocator(SlotAllocator<void>(slot),
                                                 [self = this->shared_from_this(), f = std::forward<F>(f)]() mutable { f(); }));
        }
    }

    void run() {
#if defined(__linux__)
        pthread_setname_np(pthread_self(), "mesh-reactor");
#endif
        for (;;) {
            try {
                io_.run();
                return;
            } catch (...) {
                // A handler threw (out of memory, a user allocator): keep serving the rest.
            }
        }
    }

    // ---- reactor: transitions ----

    // Once a second, connections that wrote nothing since the last sweep give their
    // outgoing ring's storage back, so idle connections stay small. A ring gets
    // storage only on the way to a write, so the writer lists its connection
    // (swept_.add) and the sweep visits only those: connections that stay idle
    // cost the reactor nothing. A writer whose wake-up could not be posted is rare
    // enough to warrant one pass over every connection.
    void schedule_park_sweep() {
        park_timer_.expires_after(std::chrono::seconds(1));
        park_timer_.async_wait([this](std::error_code ec) {
            if (ec || stopping_reads_) return;
            if constexpr (uses_writer) {
                if (wakeups_lost_.exchange(false, std::memory_order_acquire)) restart_stalled_writers();
            }
            // Under load the pool refills within a batch; idle, it holds nothing for long.
            spare_buffers_->drain();
            for (std::size_t i = 0; i < swept_.size();) {
                State& s = swept_[i];
                if (s.phase == Phase::open && s.park_if_idle()) swept_.remove(s);  // swaps the last in here
                else ++i;
            }
            if constexpr (has_liveness_limits<Connection>::value) end_lifeless();
            schedule_park_sweep();
        });
    }

    void restart_stalled_writers() {
        for (const auto& entry : live_) {
            State& s = *entry.second;
            if (s.phase == Phase::open && !s.write_pending && s.writer_stalled() && s.claim_writer())
                start_write(entry.second);
        }
    }

    // After a pump: a connection left inside a frame is timed from now, unless it
    // already is. (A pump that pauses, the incoming queue being full, stops at a
    // frame's end, so a connection is never timed while we are the ones not reading.)
    void time_frame(State& s) {
        if (!s.connection.frame_unfinished() || s.connection.frame_timeout().count() == 0) {
            partial_.remove(s);
        } else if (s.partial_slot == not_listed) {
            s.frame_since = clock::now();
            partial_.add(s);
        }
    }

    // From the sweep, once a second: connections past one of their liveness limits
    // die. A frame left unfinished: only connections inside one are listed and
    // visited. A write that makes no progress: only connections with ring storage
    // (swept_) can have a write pending. Nothing received: every connection, but only
    // while some connection has that limit.
    void end_lifeless() {
        if (partial_.size() == 0 && swept_.size() == 0 && idle_limited_ == 0) return;
        const auto now = clock::now();
        std::vector<std::pair<StatePtr, errc>> ending;
        const auto end = [&](State& s, errc why) { ending.emplace_back(live_.at(s.key), why); };
        for (std::size_t i = 0; i < partial_.size(); ++i) {
            State& s = partial_[i];
            if (s.reads() && now - s.frame_since >= s.connection.frame_timeout()) end(s, errc::frame_timeout);
        }
        for (std::size_t i = 0; i < swept_.size(); ++i) {
            State& s = swept_[i];
            const auto limit = s.connection.write_stall_timeout();
            if (limit.count() == 0 || s.phase != Phase::open) continue;
            if (!s.write_pending || progressed(s.write_mark, s.write_seen, s.connection.bytes_written(), now)) {
                s.write_seen = now;
            } else if (now - s.write_seen >= limit) {
                end(s, errc::write_stalled);
            }
        }
        if (idle_limited_ != 0) {
            for (const auto& entry : live_) {
                State& s = *entry.second;
                const auto limit = s.connection.read_idle_timeout();
                if (limit.count() == 0 || !s.reads()) continue;
                if (!progressed(s.read_mark, s.read_seen, s.connection.bytes_read(), now) && now - s.read_seen >= limit)
                    end(s, errc::idle_timeout);
            }
        }
        for (const auto& [state, why] : ending) die(state, why);  // a connection past two limits dies once
    }

    // True, noting when, if a byte count moved since the sweep last looked.
    static bool progressed(std::uint64_t& mark, clock::time_point& seen, std::uint64_t now_count,
                           clock::time_point now) noexcept {
        if (now_count == mark) return false;
        mark = now_count;
        seen = now;
        return true;
    }

    // attaching -> open
    void attach(const StatePtr& state) {
        state->connection.attach(io_, Config::max_message_size);
        if constexpr (has_liveness_limits<Connection>::value) {
            state->read_seen = state->write_seen = clock::now();
            state->read_mark = state->connection.bytes_read();
            state->write_mark = state->connection.bytes_written();
            if (state->connection.read_idle_timeout().count() != 0) ++idle_limited_;
        }
        if constexpr (uses_buffer_pool<Connection>::value) state->connection.use_pool(spare_buffers_.get());
        // Every listed connection is live, so listing never allocates.
        swept_.reserve(live_.size() + 1);
        partial_.reserve(live_.size() + 1);
        state->phase = Phase::open;
        live_.emplace(state->key, state);
        if (state->send_waiters.waiting()) {  // handed over by redial
            auto lock = state->send_waiters.lock();
            serve_sends(state);
        }
        // Messages sent before this ran have posted their own start_write, queued behind us.
        pump(state);
    }

    // A connection accepted on the reactor joins the mesh, or is refused for its id.
    void adopt(Connection&& connection, std::string id, bool make_unique) {
        StatePtr state;
        {
            std::unique_lock<std::shared_mutex> lock(map_mutex_);
            if (is_shut_down()) return;  // the connection closes here
            if (make_unique && by_id_.count(id) != 0) {
                const std::string base = id;
                do id = base + "#" + std::to_string(++id_suffix_);
                while (by_id_.count(id) != 0);
            }
            if (by_id_.count(id) == 0) {
                state = std::make_shared<State>(id, ++next_key_, std::move(connection), true);
                by_id_.emplace(id, state);
            }
        }
        ConnectionEvent event;
        event.kind = state ? ConnectionEvent::Kind::connected : ConnectionEvent::Kind::refused;
        if (!state) {
            event.reason = errc::duplicate_id;
            refused_.fetch_add(1, std::memory_order_relaxed);
        }
        event.id = std::move(id);
        events_.push(std::move(event));
        if (state) attach(state);
    }

    // open -> write_ended. A write found that the peer closed cleanly. What it sent
    // before closing may still wait to be read (say, while the incoming queue is full):
    // dying now would drop it. So only writing ends here; the read side reaches the end.
    void end_writes(const StatePtr& state, const std::error_code& reason) {
        State& s = *state;
        s.phase = Phase::write_ended;
        if (s.close_for_send(errc::disconnected, reason)) discard_queued(s);
        release_sends(s);
        if (flushing_) finish_shutdown_if_flushed();
    }

    // open | write_ended -> dying. The connection ended by itself: its I/O is cancelled
    // and it settles (and is reported) once nothing is pending.
    void die(const StatePtr& state, const std::error_code& reason) {
        State& s = *state;
        if (!s.reads()) return;
        s.phase = Phase::dying;
        s.died = reason;
        if (is_protocol_error(reason)) Counters::add(s.counters.protocol_errors, 1);
        s.close_for_send(errc::disconnected, reason);
        s.connection.cancel();
        settle(state);
    }

    // open | write_ended | dying -> removing; settled: handed over at once.
    void begin_remove(const StatePtr& state, std::promise<void>& done) {
        State& s = *state;
        s.removal = &done;
        s.close_for_send(errc::not_found, {});
        if (s.phase == Phase::settled) {
            release_sends(s);  // sends that waited for a dialer's next connection
            finish_remove(s);
            return;
        }
        s.phase = Phase::removing;
        // A write cut short here keeps its unwritten bytes in the connection, which
        // writes them before anything else: they are not discarded.
        s.connection.cancel();
        settle(state);
    }

    // dying | removing | closing -> settled, once no operation and no sender is inside.
    // Whatever ends a connection releases its I/O and buffers here, in one step, and
    // what it discarded is final here, so the event reports all of it.
    void settle(const StatePtr& state) {
        State& s = *state;
        if (!s.ending() || !s.quiet()) return;
        const Phase ending = s.phase;
        s.phase = Phase::settled;
        release_sends(s);
        discard_queued(s);
        if (s.in_flight != 0) discard_in_flight(s);  // a write pending at close_all that then failed
        if (s.held) {
            // Read but not delivered: a removed connection hands it back on its next recv.
            if (ending == Phase::removing) s.connection.unread(std::move(s.held->payload));
            else ++discarded_incoming_;
            s.held.reset();
        }
        s.connection.detach();
        if (ending != Phase::removing) s.connection.disconnect();  // also frees its buffers
        s.outgoing.release();  // the gate is closed and empty: no sender touches the ring again
        swept_.remove(s);
        partial_.remove(s);
        if constexpr (has_liveness_limits<Connection>::value) {
            if (s.connection.read_idle_timeout().count() != 0) --idle_limited_;
        }
        live_.erase(s.key);
        if (ending == Phase::dying && s.accepted) reap(state);  // before the event: whoever reads it finds the id free
        if (s.died) {
            ConnectionEvent event;
            event.kind = ConnectionEvent::Kind::disconnected;
            event.id = s.id;
            event.reason = s.died;
            event.discarded = static_cast<std::size_t>(s.counters.discarded.load(std::memory_order_relaxed));
            events_.push(std::move(event));
        }
        if (s.watch) s.watch->settled();
        if (ending == Phase::removing) finish_remove(s);
        if (closing_ && live_.empty()) finish_shutdown();
        else if (flushing_) finish_shutdown_if_flushed();
    }

    // An accepted connection that died is forgotten: its id is free again and its
    // counters go to the mesh's totals. The disconnect event has told the application.
    void reap(const StatePtr& state) {
        {
            std::unique_lock<std::shared_mutex> lock(map_mutex_);
            auto it = by_id_.find(state->id);
            if (it == by_id_.end() || it->second != state) return;  // removed meanwhile
            by_id_.erase(it);
        }
        retired_.add_from(state->counters);
    }

    void finish_remove(State& s) {
        if (s.removal) s.removal->set_value();
        s.removal = nullptr;
    }

    // The gate that closed on senders is empty now.
    void on_senders_left(const StatePtr& state) {
        State& s = *state;
        s.senders_inside = false;
        if (s.phase == Phase::write_ended) discard_queued(s);
        if (s.ending()) settle(state);
        else if (flushing_) finish_shutdown_if_flushed();
    }

    // ---- reactor: reading and writing ----

    // Moves received messages into the incoming queue until the connection has no
    // more or the queue is full; then waits for more input or for a resume.
    void pump(const StatePtr& state) {
        State& s = *state;
        if (!s.reads() || s.read_pending || stopping_reads_) return;
        std::size_t pushed = 0, messages = 0, bytes = 0;
        std::error_code ec;
        bool paused = false;
        for (;;) {
            if (s.held) {
                if (!incoming_.try_push(*s.held)) {
                    if (!incoming_.request_resume()) continue;
                    paused_.push_back(state);
                    paused = true;
                    break;
                }
                s.held.reset();
                ++pushed;
            }
            // Room only grows while the reactor is the one producer: take the message
            // straight into a cell of the queue. When it is full, the next one waits in
            // `held` for room.
            std::size_t size = 0;
            if (incoming_.has_room()) {
                if (!incoming_.try_push_from(s.id_source, [&](Payload& cell) {
                        if (!s.connection.try_take(cell, ec)) return false;
                        size = cell.size();
                        return true;
                    }))
                    break;
                ++pushed;
            } else {
                Payload payload;
                if (!s.connection.try_take(payload, ec)) break;
                size = payload.size();
                s.held.emplace(Incoming{s.id_source.next(), std::move(payload)});
            }
            ++messages;
            bytes += size;
        }
        Counters::add(s.counters.messages_in, messages);
        Counters::add(s.counters.bytes_in, bytes);
        if (pushed != 0) incoming_.wake(pushed, [this] { post_resume(); });
        if constexpr (has_liveness_limits<Connection>::value) time_frame(s);
        if (ec) {
            die(state, ec);
        } else if (!paused) {
            s.read_pending = true;
            s.connection.async_fill([this, state](std::error_code fill_ec) {
                state->read_pending = false;
                if (state->ending()) settle(state);
                else if (fill_ec) die(state, fill_ec);
                else pump(state);
            });
        }
    }

    // From a receiver's thread, once per time the incoming queue filled: in a slot of
    // its own, so it allocates nothing (a rare second one at once takes the heap).
    void post_resume() {
        post_from_caller(resume_slot_, [this] { resume_reads(); });
    }

    void resume_reads() {
        auto paused = std::move(paused_);
        paused_.clear();
        for (const auto& state : paused) pump(state);
    }

    void start_write(const StatePtr& state) {
        State& s = *state;
        if (s.phase != Phase::open || s.write_pending) return;
        swept_.add(s);
        s.write_pending = true;
        State* raw = state.get();
        s.connection.async_write_batch(
            [raw, pool = spare_buffers_.get()](auto&& encode) {
                // A payload the encoder copied leaves its buffer for the next send to reuse.
                if (!raw->outgoing.try_consume([&](Payload& payload) {
                        encode(payload);
                        pool->give(payload);
                    }))
                    return false;
                ++raw->in_flight;
                return true;
            },
            [this, state](std::error_code ec, std::size_t messages, std::size_t bytes) {
                write_done(state, ec, messages, bytes);
            });
    }

    void write_done(const StatePtr& state, std::error_code ec, std::size_t messages, std::size_t bytes) {
        State& s = *state;
        s.write_pending = false;
        // A batch cut short by remove counts as written: the connection keeps its
        // unwritten rest and writes it before anything else.
        if (!ec || (s.phase == Phase::removing && ec == asio::error::operation_aborted)) {
            s.in_flight = 0;
            Counters::add(s.counters.messages_out, messages);
            Counters::add(s.counters.bytes_out, bytes);
        } else {
            discard_in_flight(s);
        }
        if (!ec && s.phase == Phase::open) {
            // The batch made room: waiting async_sends go in (fence: see Waiters).
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (s.send_waiters.waiting()) {
                auto lock = s.send_waiters.lock();
                serve_sends(state);
            }
        }
        switch (s.phase) {
        case Phase::open:
            if (ec == errc::end_of_stream) end_writes(state, ec);
            else if (ec) die(state, ec);
            else if (s.outgoing.front_ready() || s.writer_goes_idle()) start_write(state);
            else if (flushing_) finish_shutdown_if_flushed();
            break;
        case Phase::dying:
        case Phase::removing:
        case Phase::closing: settle(state); break;
        default: break;
        }
    }

    // Once shutdown has begun, whatever is discarded (by it, or by a connection that
    // ends during the flush) goes in its report, so the report adds up.
    void discard_queued(State& s) { count_discarded(s.discard_queued()); }
    void discard_in_flight(State& s) { count_discarded(s.discard_in_flight()); }
    void count_discarded(std::size_t n) {
        if (report_) discarded_outgoing_ += n;
    }

    // ---- reactor: shutdown ----

    void begin_shutdown(clock::duration flush, std::shared_ptr<std::promise<ShutdownReport>> report) {
        report_ = std::move(report);
        stopping_reads_ = true;
        park_timer_.cancel();
        for (auto& close_listener : listener_closers_) close_listener();
        listener_closers_.clear();
        {
            std::shared_lock<std::shared_mutex> lock(map_mutex_);
            for (const auto& entry : by_id_) {
                entry.second->close_for_send(errc::shut_down, {});
                if (entry.second->phase == Phase::settled) release_sends(*entry.second);
            }
        }
        if (flush > clock::duration::zero()) {
            flushing_ = true;
            flush_timer_.expires_after(flush);
            flush_timer_.async_wait([this](std::error_code) { close_all(); });
            finish_shutdown_if_flushed();
        } else {
            close_all();
        }
    }

    void finish_shutdown_if_flushed() {
        for (const auto& entry : live_) {
            const State& s = *entry.second;
            if (s.phase == Phase::open && (s.write_pending || s.senders_inside || s.outgoing.front_ready())) return;
        }
        close_all();
    }

    // Every connection still live -> closing (one being removed stays removing).
    void close_all() {
        if (closing_) return;
        closing_ = true;
        flushing_ = false;
        flush_timer_.cancel();
        auto states = live_;  // settle() erases from live_
        for (const auto& entry : states) {
            State& s = *entry.second;
            if (s.phase != Phase::removing) s.phase = Phase::closing;
            s.connection.cancel();
            settle(entry.second);
        }
        if (live_.empty()) finish_shutdown();
    }

    void finish_shutdown() {
        if (!report_) return;
        paused_.clear();
        ShutdownReport report;
        report.discarded_outgoing = discarded_outgoing_;
        report.discarded_incoming = discarded_incoming_ + incoming_.drain();
        report_->set_value(report);
        report_ = nullptr;
        work_.reset();
        // Handlers of ours still queued (cancelled timers, listeners) were queued before
        // this one; the core goes once they ran.
        if (self_) asio::post(io_, [self = std::move(self_)] {});
    }

    std::unique_ptr<asio::io_context> own_io_;  // null on the application's io_context
    asio::io_context& io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    const asio::any_io_executor default_executor_;
    std::shared_ptr<MeshCore> self_;  // on the application's io_context: until the shutdown is done
    std::thread thread_;
    std::thread::id reactor_id_;  // set once by start(), before any caller can see the core
    std::mutex begin_mutex_;
    bool shutdown_begun_ = false;                // begin_mutex_
    std::future<ShutdownReport> report_future_;  // begin_mutex_, then only the joiner
    std::mutex join_mutex_;
    std::atomic<bool> shut_down_{false};

    mutable std::shared_mutex map_mutex_;
    std::unordered_map<std::string, StatePtr> by_id_;
    std::uint64_t next_key_ = 0;
    std::uint64_t id_suffix_ = 0;
    Counters retired_;
    std::atomic<std::uint64_t> refused_{0};

    // Shared with the process's other meshes; before incoming_, which uses it.
    const std::shared_ptr<BufferPool> spare_buffers_ = BufferPool::shared(Config::pooled_buffer_max_size);
    IncomingQueue<Config::incoming_capacity> incoming_{spare_buffers_.get()};
    HandlerSlot resume_slot_;
    EventQueue events_{Config::event_capacity};

    // reactor
    std::unordered_map<std::uint64_t, StatePtr> live_;
    IndexedList<State, &State::sweep_slot> swept_;  // open connections whose ring may hold storage; each is in live_
    IndexedList<State, &State::partial_slot> partial_;  // connections left inside a frame; each is in live_
    std::size_t idle_limited_ = 0;  // live connections with a read idle timeout
    std::atomic<bool> wakeups_lost_{false};  // set by senders
    std::vector<StatePtr> paused_;
    std::vector<std::function<void()>> listener_closers_;
    bool stopping_reads_ = false;
    bool flushing_ = false;
    bool closing_ = false;
    asio::steady_timer flush_timer_{io_};
    asio::steady_timer park_timer_{io_};
    std::shared_ptr<std::promise<ShutdownReport>> report_;
    std::size_t discarded_outgoing_ = 0;
    std::size_t discarded_incoming_ = 0;
};

} // namespace detail
MESH_NAMESPACE_END
