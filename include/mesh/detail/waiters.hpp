#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/async_op.hpp"
#include "mesh/error.hpp"

#include <asio/associated_cancellation_slot.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// Pending asynchronous operations of one kind, first come first served. Item holds
// `op` (a unique_ptr to an AsyncOp) and has fail(ec), which completes it with ec.
// Every member but waiting() is called with the lock held (lock()).
//
// A producer that makes an operation possible (a message queued, room made) checks
// waiting() after a seq_cst fence, and a waiter raises the count (enlist) before its
// own last look at the resource after a seq_cst fence: so either the waiter sees
// the producer's change, or the producer sees the waiter and serves it under the lock.
template <class Item>
class Waiters {
public:
    std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex_); }

    // Any thread, lock-free: true when an operation waits (after a seq_cst fence, see above).
    bool waiting() const noexcept { return count_.load(std::memory_order_relaxed) != 0; }

    bool empty() const noexcept { return items_.empty(); }
    Item& front() noexcept { return items_.front(); }

    void enlist(Item&& item) {
        items_.push_back(std::move(item));
        count_.store(items_.size(), std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }

    Item pop_front() {
        Item item = std::move(items_.front());
        items_.pop_front();
        count_.store(items_.size(), std::memory_order_relaxed);
        return item;
    }

    // Completes every operation with `ec`.
    void fail_all(std::error_code ec) {
        while (!items_.empty()) pop_front().fail(ec);
    }

    // Completes the operations of `scope` (a handle's cancel()) with operation_aborted.
    void cancel_scope(std::uint64_t scope) {
        remove_if([&](const Item& item) { return item.op->tag.scope == scope; });
    }

    // Completes operation `id` with operation_aborted if it is still waiting.
    void cancel(std::uint64_t id) {
        remove_if([&](const Item& item) { return item.op->tag.id == id; });
    }

private:
    template <class Match>
    void remove_if(Match match) {
        for (auto it = items_.begin(); it != items_.end();) {
            if (!match(*it)) {
                ++it;
                continue;
            }
            Item item = std::move(*it);
            it = items_.erase(it);
            count_.store(items_.size(), std::memory_order_relaxed);
            item.fail(asio::error::operation_aborted);
        }
    }

    std::mutex mutex_;
    std::deque<Item> items_;
    std::atomic<std::size_t> count_{0};
};

// What an operation's cancellation slot holds: it takes the operation out of its
// list, if it still waits there. `keep` holds the list's owner alive.
template <class Item>
struct WaiterCanceller {
    std::shared_ptr<void> keep;
    Waiters<Item>* waiters;
    std::uint64_t id;

    void operator()(asio::cancellation_type type) const {
        if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                     asio::cancellation_type::total)) == asio::cancellation_type::none)
            return;
        auto lock = waiters->lock();
        waiters->cancel(id);
    }
};

// Installs a canceller in an operation's slot (taken from its handler before the
// handler moved into the operation), when it has one. Called under the lock, before
// the operation is enlisted: no completion can race it.
template <class Item>
void connect_cancellation(asio::cancellation_slot& slot, Waiters<Item>& waiters, std::shared_ptr<void> keep,
                          std::uint64_t id) {
    if (slot.is_connected()) slot.template emplace<WaiterCanceller<Item>>(WaiterCanceller<Item>{std::move(keep), &waiters, id});
}

} // namespace detail
MESH_NAMESPACE_END
