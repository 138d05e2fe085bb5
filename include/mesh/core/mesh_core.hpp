#pragma once

#include "mesh/config.hpp"
#include "mesh/core/connection_state.hpp"
#include "mesh/core/events.hpp"
#include "mesh/core/incoming_queue.hpp"
#include "mesh/core/stats.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/send_result.hpp"

#include <asio/bind_allocator.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

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

namespace mesh {

// What shutdown did with messages it could not deliver.
struct ShutdownReport {
    std::size_t discarded_outgoing = 0;  // accepted by send, never written
    std::size_t discarded_incoming = 0;  // received, never taken by recv
};

namespace detail {

inline bool is_protocol_error(const std::error_code& ec) {
    return ec == errc::bad_checksum || ec == errc::unsupported_version ||
           ec == errc::message_too_large || ec == errc::truncated_frame;
}

// The state shared by every copy of a Mesh, and the reactor that drives it.
// Members marked "reactor" are touched only on the reactor thread, so they need no
// lock; callers reach them by posting to the io_context.
template <class Transport, class Config>
class MeshCore {
public:
    using Connection = typename Transport::connection_type;
    using State = ConnectionState<Connection, Config>;
    using StatePtr = std::shared_ptr<State>;
    using clock = std::chrono::steady_clock;
    // False when every connection sends directly: the reactor's writer (start_write and
    // the connection's async_write_batch) is then never needed, nor compiled.
    static constexpr bool uses_writer = !always_sends_directly<Connection>::value;

    MeshCore() : work_(asio::make_work_guard(io_)) {
        schedule_park_sweep();
        thread_ = std::thread([this] { run(); });
    }

    ~MeshCore() { shutdown(clock::duration::zero()); }

    MeshCore(const MeshCore&) = delete;
    MeshCore& operator=(const MeshCore&) = delete;

    bool is_shut_down() const noexcept { return shut_down_.load(std::memory_order_acquire); }

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
        auto state = std::make_shared<State>(id, key, std::move(connection));
        by_id_.emplace(std::move(id), state);
        // Posted under the lock so that a shutdown or remove that follows is queued after it.
        asio::post(io_, [this, state] { attach(state); });
        ec = {};
        return key;
    }

    // Waits for the reactor without holding any lock.
    Connection remove(const std::string& id, std::error_code& ec) {
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

    // Accepts on the reactor from now on; each connection is added under rule(connection)
    // and announced by a connected event. A duplicate id closes the new connection.
    template <class Listener, class IdRule>
    void accept_from(Listener&& listener, IdRule rule, std::error_code& ec) {
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
                adopt(std::move(connection), std::move(id));
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

    std::error_code recv(Envelope& out, clock::time_point deadline) {
        return incoming_.pop(out, deadline, [this] { post_resume(); });
    }

    std::error_code try_recv(Envelope& out) {
        return incoming_.try_pop(out, [this] { post_resume(); });
    }

    std::error_code next_event(ConnectionEvent& out, clock::time_point deadline) {
        return events_.pop(out, deadline);
    }

    ConnectionStats stats(const std::string& id, std::error_code& ec) const {
        ConnectionStats s;
        auto state = find(id);
        if (!state) {
            ec = errc::not_found;
            return s;
        }
        state->counters.add_to(s);
        s.queue_depth = state->queue_depth();
        s.connections = 1;
        ec = {};
        return s;
    }

    ConnectionStats total_stats() const {
        ConnectionStats s;
        retired_.add_to(s);
        std::shared_lock<std::shared_mutex> lock(map_mutex_);
        for (const auto& entry : by_id_) {
            entry.second->counters.add_to(s);
            s.queue_depth += entry.second->queue_depth();
        }
        s.connections = by_id_.size();
        return s;
    }

    // Receivers return shut_down at once; queued outgoing messages get up to
    // `flush` to be written; the reactor thread is joined. Later calls return an
    // empty report.
    ShutdownReport shutdown(clock::duration flush) {
        std::lock_guard<std::mutex> once(shutdown_mutex_);
        if (!thread_.joinable()) return {};
        auto report = std::make_shared<std::promise<ShutdownReport>>();
        auto future = report->get_future();
        {
            std::unique_lock<std::shared_mutex> lock(map_mutex_);
            shut_down_.store(true, std::memory_order_release);
            asio::post(io_, [this, flush, report] { begin_shutdown(flush, report); });
        }
        incoming_.close();
        events_.close();
        if (std::this_thread::get_id() == thread_.get_id()) {
            thread_.detach();  // called from a handler: the reactor cannot join itself
            return {};
        }
        thread_.join();
        return future.get();
    }

private:
    SendResult push(const StatePtr& state, Payload& payload) {
        bool wake = false;
        SendResult result = state->try_send(payload, wake);
        if constexpr (uses_writer) {
            if (wake)  // never set by a direct send
                asio::post(io_, asio::bind_allocator(SlotAllocator<void>(state->wake_slot),
                                                     [this, state] { start_write(state); }));
        }
        return result;
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

    // ---- reactor ----

    // Once a second, connections that wrote nothing since the last sweep give their
    // outgoing ring's storage back, so idle connections stay small.
    void schedule_park_sweep() {
        park_timer_.expires_after(std::chrono::seconds(1));
        park_timer_.async_wait([this](std::error_code ec) {
            if (ec || stopping_reads_) return;
            for (const auto& entry : live_)
                if (!entry.second->ending()) entry.second->park_if_idle();
            schedule_park_sweep();
        });
    }

    void attach(const StatePtr& state) {
        state->connection.attach(io_, Config::max_message_size);
        state->attached = true;
        live_.emplace(state->key, state);
        // Messages sent before this ran have posted their own start_write, queued behind us.
        pump(state);
    }

    // A connection accepted on the reactor joins the mesh.
    void adopt(Connection&& connection, std::string id) {
        StatePtr state;
        {
            std::unique_lock<std::shared_mutex> lock(map_mutex_);
            if (is_shut_down() || by_id_.count(id) != 0) return;  // the connection closes here
            state = std::make_shared<State>(id, ++next_key_, std::move(connection));
            by_id_.emplace(id, state);
        }
        ConnectionEvent event;
        event.kind = ConnectionEvent::Kind::connected;
        event.id = std::move(id);
        events_.push(std::move(event));
        attach(state);
    }

    // Moves received messages into the incoming queue until the connection has no
    // more or the queue is full; then waits for more input or for a resume.
    void pump(const StatePtr& state) {
        State& s = *state;
        if (s.ending() || s.reading || stopping_reads_) return;
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
            Payload payload;
            if (!s.connection.try_take(payload, ec)) break;
            ++messages;
            bytes += payload.size();
            s.held.emplace(s.id, std::move(payload));
        }
        Counters::add(s.counters.messages_in, messages);
        Counters::add(s.counters.bytes_in, bytes);
        if (pushed != 0) incoming_.wake(pushed);
        if (ec) {
            die(state, ec);
        } else if (!paused) {
            s.reading = true;
            s.connection.async_fill([this, state](std::error_code fill_ec) {
                state->reading = false;
                if (state->ending()) settle(state);
                else if (fill_ec) die(state, fill_ec);
                else pump(state);
            });
        }
    }

    void post_resume() {
        asio::post(io_, [this] { resume_reads(); });
    }

    void resume_reads() {
        auto paused = std::move(paused_);
        paused_.clear();
        for (const auto& state : paused) pump(state);
    }

    void start_write(const StatePtr& state) {
        State& s = *state;
        if (!s.attached || s.writing || s.write_ended || s.ending()) return;
        s.writing = true;
        State* raw = state.get();
        s.connection.async_write_batch(
            [raw](Payload& payload) {
                if (!raw->outgoing.try_pop(payload)) return false;
                ++raw->in_flight;
                return true;
            },
            [this, state](std::error_code ec, std::size_t messages, std::size_t bytes) {
                State& st = *state;
                st.writing = false;
                if (ec) {
                    if (st.ending()) settle(state);
                    else if (ec == errc::end_of_stream) end_writes(st, ec);
                    else die(state, ec);
                    return;
                }
                st.in_flight = 0;
                Counters::add(st.counters.messages_out, messages);
                Counters::add(st.counters.bytes_out, bytes);
                if (st.ending()) {
                    settle(state);
                } else if (!st.outgoing.empty() || st.writer_goes_idle()) {
                    start_write(state);
                } else if (flushing_) {
                    finish_shutdown_if_flushed();
                }
            });
    }

    // Once shutdown has begun, whatever is discarded (by it, or by a connection that
    // ends during the flush) goes in its report, so the report adds up.
    std::size_t discard_outgoing(State& s) {
        const std::size_t n = s.discard_outgoing();
        if (report_) discarded_outgoing_ += n;
        return n;
    }

    // A write found that the peer closed cleanly. What it sent before closing may
    // still wait to be read (say, while the incoming queue is full): dying now would
    // drop it. So only writing ends here; the read side reaches the end and dies.
    void end_writes(State& s, const std::error_code& reason) {
        s.write_ended = true;
        s.close_for_send(errc::disconnected, reason);
        s.discarded_early += discard_outgoing(s);
        if (flushing_) finish_shutdown_if_flushed();
    }

    // The connection ended by itself: report it once and release its I/O now. The
    // id stays registered, so send reports disconnected and remove still works.
    void die(const StatePtr& state, const std::error_code& reason) {
        State& s = *state;
        if (s.ending()) return;
        s.alive = false;
        s.close_for_send(errc::disconnected, reason);
        if (is_protocol_error(reason)) Counters::add(s.counters.protocol_errors, 1);
        ConnectionEvent event;
        event.kind = ConnectionEvent::Kind::disconnected;
        event.id = s.id;
        event.reason = reason;
        event.discarded = discard_outgoing(s) + s.discarded_early;
        s.discarded_early = 0;
        events_.push(std::move(event));
        s.connection.cancel();
        settle(state);
        if (flushing_) finish_shutdown_if_flushed();  // a graceful shutdown need not wait for it
    }

    void begin_remove(const StatePtr& state, std::promise<void>& done) {
        State& s = *state;
        s.removal = &done;
        s.removing = true;
        s.close_for_send(errc::not_found, {});
        if (s.settled) {
            finish_remove(s);
            return;
        }
        // A write cut short here keeps its unwritten bytes in the connection, which
        // writes them before anything else: they are not discarded.
        s.connection.cancel();
        settle(state);
    }

    // Releases the connection's I/O once no operation is pending on it.
    void settle(const StatePtr& state) {
        State& s = *state;
        if (s.busy() || s.settled) return;
        s.settled = true;
        if (s.removing) s.in_flight = 0;  // the connection still holds what it did not write
        discard_outgoing(s);  // non-zero when a write pending at close_all then failed
        if (s.held) {
            // Read but not delivered: a removed connection hands it back on its next recv.
            if (s.removing) s.connection.unread(std::move(s.held->payload));
            else ++discarded_incoming_;
            s.held.reset();
        }
        if (s.attached) s.connection.detach();
        if (!s.removing) s.connection.disconnect();
        live_.erase(s.key);
        if (s.removing) finish_remove(s);
        if (closing_ && live_.empty()) finish_shutdown();
    }

    void finish_remove(State& s) {
        if (s.removal) s.removal->set_value();
        s.removal = nullptr;
    }

    void begin_shutdown(clock::duration flush, std::shared_ptr<std::promise<ShutdownReport>> report) {
        report_ = std::move(report);
        stopping_reads_ = true;
        park_timer_.cancel();
        for (auto& close_listener : listener_closers_) close_listener();
        listener_closers_.clear();
        {
            std::shared_lock<std::shared_mutex> lock(map_mutex_);
            for (const auto& entry : by_id_) entry.second->close_for_send(errc::shut_down, {});
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
            if (!s.ending() && (s.writing || !s.outgoing.empty())) return;
        }
        close_all();
    }

    void close_all() {
        if (closing_) return;
        closing_ = true;
        flushing_ = false;
        flush_timer_.cancel();
        auto states = live_;  // settle() erases from live_
        for (const auto& entry : states) {
            State& s = *entry.second;
            s.closing = true;
            discard_outgoing(s);
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
    }

    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
    std::mutex shutdown_mutex_;
    std::atomic<bool> shut_down_{false};

    mutable std::shared_mutex map_mutex_;
    std::unordered_map<std::string, StatePtr> by_id_;
    std::uint64_t next_key_ = 0;
    Counters retired_;

    IncomingQueue<Config::incoming_capacity> incoming_;
    EventQueue events_;

    // reactor
    std::unordered_map<std::uint64_t, StatePtr> live_;
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
} // namespace mesh
