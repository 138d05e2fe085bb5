#pragma once

#include "mesh/version.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A one-waiter wake-up for lock-free queues. The waiter arms the signal, re-checks
// its condition, then sleeps (blocking use) or returns (asynchronous use, where a
// callback set with set_callback runs on notify). The notifier pays one fence and
// one load while nobody waits, so it can sit on a per-message path.
class Signal {
public:
    // Blocks until ready() holds or the deadline passes; returns ready().
    template <class Ready>
    bool wait_until(Ready ready, std::chrono::steady_clock::time_point deadline) {
        while (!ready()) {
            std::unique_lock<std::mutex> lock(mutex_);
            armed_.store(true, std::memory_order_seq_cst);
            // seq_cst pairs with the notifier's fence: either we see its update
            // here or it sees armed_ and wakes us.
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (ready()) break;
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return ready();
        }
        armed_.store(false, std::memory_order_relaxed);
        return true;
    }

    template <class Ready>
    void wait(Ready ready) {
        wait_until(ready, std::chrono::steady_clock::time_point::max());
    }

    // Asynchronous use: the callback runs on the notifying thread; keep it short (a post).
    void set_callback(std::function<void()> callback) {
        std::lock_guard<std::mutex> lock(mutex_);
        callback_ = std::move(callback);
    }

    // Arms the signal for one asynchronous notification. The caller must re-check
    // its condition afterwards and call notify() itself if it already holds.
    void arm() {
        armed_.store(true, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }

    // Takes back an arming that was not fired; true if it was still armed.
    bool disarm() { return armed_.exchange(false, std::memory_order_acq_rel); }

    void notify() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (!armed_.load(std::memory_order_relaxed)) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (callback_) {
            if (armed_.exchange(false, std::memory_order_acq_rel)) callback_();
        } else {
            cv_.notify_all();
        }
    }

private:
    std::atomic<bool> armed_{false};
    std::mutex mutex_;
    std::condition_variable cv_;
    std::function<void()> callback_;
};

} // namespace detail
MESH_NAMESPACE_END
