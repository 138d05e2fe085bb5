#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/waiters.hpp"
#include "mesh/error.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

MESH_NAMESPACE_BEGIN

/// Something that happened to a connection, reported with the id it was added under.
struct ConnectionEvent {
    /// connected: accept_from added it. disconnected: it ended by itself. refused:
    /// accept_from closed it because its id rule gave an id already in use (duplicate_id).
    enum class Kind {
        connected,     ///< accept_from added the connection
        disconnected,  ///< the connection ended by itself
        refused,       ///< accept_from closed it: its id was in use (reason: duplicate_id)
        dialed,        ///< a dialer (Mesh::dial) connected and added the connection
        dial_failed    ///< a dialer's attempt failed (reason: why); it tries again after its backoff
    };

    Kind kind = Kind::disconnected;  ///< what happened
    std::string id;                  ///< the connection's id
    std::error_code reason;     ///< disconnected: end_of_stream for a clean close, else the error
    std::size_t discarded = 0;  ///< disconnected: accepted messages that were never written
};

namespace detail {

// An async_next_event waiting for an event.
struct EventWaiter {
    std::unique_ptr<AsyncOp<ConnectionEvent>> op;
    void fail(std::error_code ec) { op->complete(ec, ConnectionEvent()); }
};

// Holds at most `capacity` events. When nobody takes them and it is full, a new
// event is dropped and counted (dropped()): the reactor never waits on a consumer.
class EventQueue {
public:
    explicit EventQueue(std::size_t capacity) : capacity_(capacity) {}

    void push(ConnectionEvent event) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto waiting = async_.lock();
            if (!async_.empty()) return async_.pop_front().op->complete({}, std::move(event));
            if (events_.size() >= capacity_) {
                dropped_.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            events_.push_back(std::move(event));
        }
        cv_.notify_one();
    }

    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

    // Queued events are still handed out after close; then shut_down.
    std::error_code pop(ConnectionEvent& out, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!cv_.wait_until(lock, deadline, [&] { return closed_ || !events_.empty(); }))
            return errc::timeout;
        if (events_.empty()) return errc::shut_down;
        out = std::move(events_.front());
        events_.pop_front();
        return {};
    }

    void close() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            closed_ = true;
            auto waiting = async_.lock();
            async_.fail_all(errc::shut_down);  // the queue is empty whenever one waits
        }
        cv_.notify_all();
    }

    // Completes (posted) with the next event, at once when one is queued; then
    // shut_down once closed and empty. Events go to waiting operations in order.
    void async_pop(std::unique_ptr<AsyncOp<ConnectionEvent>> op, asio::cancellation_slot slot,
                   std::shared_ptr<void> keep) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!events_.empty()) {
            ConnectionEvent event = std::move(events_.front());
            events_.pop_front();
            return op->complete({}, std::move(event));
        }
        if (closed_) return op->complete(errc::shut_down, ConnectionEvent());
        auto waiting = async_.lock();
        connect_cancellation(slot, async_, std::move(keep), op->tag.id);
        async_.enlist(EventWaiter{std::move(op)});
    }

    // Completes the waiting operations started by one handle with operation_aborted.
    void cancel(std::uint64_t scope) {
        auto waiting = async_.lock();
        async_.cancel_scope(scope);
    }

private:
    const std::size_t capacity_;
    std::atomic<std::uint64_t> dropped_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<ConnectionEvent> events_;
    bool closed_ = false;
    Waiters<EventWaiter> async_;  // locked after mutex_ when both are held
};

} // namespace detail
MESH_NAMESPACE_END
