#pragma once

#include "mesh/version.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>

MESH_NAMESPACE_BEGIN
namespace detail {

// What a dialer's thread waits on: the end of the connection it added (the reactor
// calls settled() when that connection settles, whatever ended it), or stop().
// Both are sticky under the mutex, so a notice that comes before the wait is kept.
class DialWatch {
public:
    void settled() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            settled_ = true;
        }
        cv_.notify_all();
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopped_ = true;
        }
        cv_.notify_all();
    }
    bool stopped() {
        std::lock_guard<std::mutex> lock(mutex_);
        return stopped_;
    }
    // Until the connection settled (the notice is then taken) or stop; false on stop.
    bool wait_settled() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return settled_ || stopped_; });
        settled_ = false;
        return !stopped_;
    }
    // Waits `d` unless stopped first; false on stop.
    bool pause(std::chrono::steady_clock::duration d) {
        std::unique_lock<std::mutex> lock(mutex_);
        return !cv_.wait_for(lock, d, [&] { return stopped_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool settled_ = false;
    bool stopped_ = false;
};

} // namespace detail
MESH_NAMESPACE_END
