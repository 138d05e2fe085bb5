#pragma once

#include "mesh/error.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>

namespace mesh {

// Something that happened to a connection, reported with the id it was added under.
struct ConnectionEvent {
    enum class Kind { connected, disconnected };

    Kind kind = Kind::disconnected;
    std::string id;
    std::error_code reason;     // disconnected: end_of_stream for a clean close, else the error
    std::size_t discarded = 0;  // disconnected: accepted messages that were never written
};

namespace detail {

// Unbounded in type but bounded in practice: at most one disconnect per connection,
// so it never drops an event while the message queues are full.
class EventQueue {
public:
    void push(ConnectionEvent event) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            events_.push_back(std::move(event));
        }
        cv_.notify_one();
    }

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
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<ConnectionEvent> events_;
    bool closed_ = false;
};

} // namespace detail
} // namespace mesh
