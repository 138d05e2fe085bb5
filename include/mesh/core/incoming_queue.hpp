#pragma once

#include "mesh/version.hpp"
#include "mesh/core/shared_id.hpp"
#include "mesh/detail/buffer_pool.hpp"
#include "mesh/detail/ring.hpp"
#include "mesh/detail/waiters.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <new>
#include <thread>

MESH_NAMESPACE_BEGIN
namespace detail {

// An envelope as it waits in the incoming queue. Its id is shared with its
// connection, so queueing a message copies no string; the receiver copies the id
// into its own Envelope, whose string keeps its capacity from one recv to the next.
struct Incoming {
    IdRef id;
    Payload payload;
};

// An async_recv waiting for an envelope.
struct RecvWaiter {
    std::unique_ptr<AsyncOp<Envelope>> op;
    void fail(std::error_code ec) { op->complete(ec, Envelope()); }
};

// The queue between the reactor (its only producer) and every receiver of every
// copy of a Mesh. Receivers sleep on a condition variable only when it is empty;
// the reactor takes the lock to wake them only when someone sleeps. When it is
// full the reactor stops reading and asks to be resumed; the receiver that brings
// it down to half full does that, so resumes come once per batch, not per message.
template <std::size_t Capacity>
class IncomingQueue {
public:
    using clock = std::chrono::steady_clock;

    // Receivers give the heap buffers of the payloads they overwrite to `pool`
    // (nullptr: they free them), for the reactor to decode the next ones into.
    explicit IncomingQueue(BufferPool* pool = nullptr) noexcept : pool_(pool) {}

    // ---- reactor side ----

    bool try_push(Incoming& incoming) noexcept { return ring_.try_push(incoming); }

    // True when a push would succeed; only the reactor pushes, so room only grows
    // until it does.
    bool has_room() const noexcept { return ring_.has_room(); }

    // Receives straight into the queue: when it has room, fill(payload) may write the
    // next message into a free cell's payload (true) or decline (false, nothing is
    // queued). The message then moves once, cell to receiver. False also when full.
    // If fill throws, nothing is queued either.
    template <class Fill>
    bool try_push_from(IdSource& ids, Fill&& fill) {
        return ring_.try_produce([&](void* cell) {
            Incoming* in = ::new (cell) Incoming{};
            bool filled = false;
            try {
                filled = fill(in->payload);
            } catch (...) {
                in->~Incoming();
                throw;
            }
            if (!filled) {
                in->~Incoming();
                return false;
            }
            in->id = ids.next();
            return true;
        });
    }

    // Wakes receivers after `pushed` envelopes went in, and hands envelopes to
    // asynchronous receivers (their handlers are posted, never run here).
    template <class Resume>
    void wake(std::size_t pushed, Resume&& resume) {
        // seq_cst pairs with the sleeper's fence (and Waiters' enlist): it either sees
        // our envelopes or we see it.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (async_.waiting()) {
            auto lock = async_.lock();
            serve(resume);
        }
        if (sleepers_.load(std::memory_order_relaxed) == 0) return;
        { std::lock_guard<std::mutex> lock(mutex_); }
        if (pushed == 1) cv_.notify_one();
        else cv_.notify_all();
    }

    // After a failed push: asks receivers for a resume. False means room appeared
    // meanwhile and the push should simply be retried.
    bool request_resume() noexcept {
        resume_wanted_.store(true, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return !ring_.has_room();
    }

    void close() {
        closed_.store(true, std::memory_order_seq_cst);
        { std::lock_guard<std::mutex> lock(mutex_); }
        cv_.notify_all();
        auto lock = async_.lock();
        async_.fail_all(errc::shut_down);
    }

    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    std::size_t size() const noexcept { return ring_.size(); }

    // Empties the queue; returns how many envelopes it held.
    std::size_t drain() noexcept {
        std::size_t n = 0;
        Incoming dropped;
        while (ring_.try_pop(dropped)) ++n;
        return n;
    }

    // ---- receiver side ----

    // Take up to `max` envelopes into out[0..max), as many as are queued, and set
    // `taken` to how many; one call pays the synchronisation a single recv pays.

    // Returns {} or errc::would_block without waiting, or errc::shut_down.
    template <class Resume>
    std::error_code try_pop(Envelope* out, std::size_t max, std::size_t& taken, Resume&& resume) {
        taken = 0;
        if (closed()) return errc::shut_down;
        if (max == 0) return {};
        if ((taken = take(out, max)) == 0) return errc::would_block;
        return popped(resume);
    }

    // Returns {}, errc::timeout (deadline passed) or errc::shut_down. `resume()` is
    // called when the reactor must be told that there is room again.
    template <class Resume>
    std::error_code pop(Envelope* out, std::size_t max, std::size_t& taken, clock::time_point deadline,
                        Resume&& resume) {
        taken = 0;
        if (max == 0) return closed() ? make_error_code(errc::shut_down) : std::error_code();
        // Spinning, then yielding, a little before sleeping saves a futex sleep and wake-up
        // (tens of microseconds across cores) whenever traffic is steady.
        constexpr int spins = 64, yields = 64;
        for (int i = 0; i < spins + yields; ++i) {
            if (closed()) return errc::shut_down;
            if ((taken = take(out, max)) != 0) return popped(resume);
            if (i >= spins) std::this_thread::yield();
        }
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        std::error_code result;
        for (;;) {
            if (closed()) {
                result = errc::shut_down;
                break;
            }
            if ((taken = take(out, max)) != 0) break;
            // Empty: a reactor waiting for room must not wait on us.
            if (resume_wanted_.exchange(false, std::memory_order_acq_rel)) resume();
            if (deadline == clock::time_point::max()) {
                cv_.wait(lock);
            } else if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
                if (closed()) result = errc::shut_down;
                else if ((taken = take(out, max)) == 0) result = errc::timeout;
                break;
            }
        }
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        lock.unlock();
        return result ? result : popped(resume);
    }

    // An asynchronous receive: completes at once (posted) when an envelope is queued
    // and no earlier one waits, else waits in line; the reactor serves the line as
    // envelopes arrive. `slot` is the handler's cancellation slot; `keep` keeps this
    // queue alive for it.
    template <class Resume>
    void async_pop(std::unique_ptr<AsyncOp<Envelope>> op, asio::cancellation_slot slot, std::shared_ptr<void> keep,
                   Resume&& resume) {
        auto lock = async_.lock();
        if (async_.empty()) {
            Envelope envelope;
            std::size_t taken = 0;
            const std::error_code ec = try_pop(&envelope, 1, taken, resume);
            if (ec != errc::would_block) return op->complete(ec, std::move(envelope));
        }
        connect_cancellation(slot, async_, std::move(keep), op->tag.id);
        async_.enlist(RecvWaiter{std::move(op)});
        serve(resume);  // whatever came in before we were listed
    }

    // Completes the waiting receives started by one handle with operation_aborted.
    void cancel(std::uint64_t scope) {
        auto lock = async_.lock();
        async_.cancel_scope(scope);
    }

private:
    // Under async_'s lock: hands queued envelopes to waiting receives, in order.
    template <class Resume>
    void serve(Resume& resume) {
        std::size_t served = 0;
        while (!async_.empty()) {
            if (closed()) return async_.fail_all(errc::shut_down);
            Envelope envelope;
            if (take(&envelope, 1) == 0) break;
            async_.pop_front().op->complete({}, std::move(envelope));
            ++served;
        }
        if (served != 0) popped(resume);
    }

    std::size_t take(Envelope* out, std::size_t max) {
        std::size_t n = 0;
        IdRun run;  // holds each id until its text is copied, and gives a run back at once
        // Straight from the ring's cell into the envelope: one move of the payload.
        while (n < max && ring_.try_consume([&](Incoming& in) {
            SharedId* id = in.id.detach();
            run.add(id);
            out[n].id.assign(id->text());
            if (pool_) pool_->give(out[n].payload);
            out[n].payload = std::move(in.payload);
        }))
            ++n;
        return n;
    }

    // One fence per call, however many were taken.
    template <class Resume>
    std::error_code popped(Resume& resume) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (resume_wanted_.load(std::memory_order_relaxed) && ring_.size() <= Capacity / 2 &&
            resume_wanted_.exchange(false, std::memory_order_acq_rel))
            resume();
        return {};
    }

    Ring<Incoming, Capacity, true, false> ring_;  // reactor -> receivers
    BufferPool* const pool_;
    std::atomic<bool> closed_{false};
    std::atomic<bool> resume_wanted_{false};
    std::atomic<int> sleepers_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
    Waiters<RecvWaiter> async_;
};

} // namespace detail
MESH_NAMESPACE_END
