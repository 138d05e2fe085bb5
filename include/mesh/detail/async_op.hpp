#pragma once

#include "mesh/version.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <system_error>
#include <tuple>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// Which pending operation this is (for its cancellation slot), and which handle
// started it (for that handle's cancel()).
struct OpTag {
    std::uint64_t id = 0;
    std::uint64_t scope = 0;

    static std::uint64_t next() noexcept {
        static std::atomic<std::uint64_t> counter{0};
        return counter.fetch_add(1, std::memory_order_relaxed) + 1;
    }
};

// A pending asynchronous operation, its handler's type erased. complete() is called
// once, from any thread; it posts the handler with (ec, values...) to the handler's
// executor, so a handler never runs inside the call that completes it (or that
// started it), nor on the reactor.
template <class... Values>
class AsyncOp {
public:
    explicit AsyncOp(OpTag tag) noexcept : tag(tag) {}
    virtual ~AsyncOp() = default;
    AsyncOp(const AsyncOp&) = delete;
    AsyncOp& operator=(const AsyncOp&) = delete;

    virtual void complete(std::error_code ec, Values... values) = 0;

    const OpTag tag;
};

template <class Handler, class... Values>
class HandlerOp final : public AsyncOp<Values...> {
    using Executor = asio::associated_executor_t<Handler, asio::any_io_executor>;

public:
    HandlerOp(Handler&& handler, OpTag tag, const asio::any_io_executor& fallback)
        : AsyncOp<Values...>(tag), work_(asio::get_associated_executor(handler, fallback)),
          handler_(std::move(handler)) {}

    void complete(std::error_code ec, Values... values) override {
        // The posted function counts as work itself, so the guard may go after the post.
        asio::post(work_.get_executor(),
                   [handler = std::move(handler_), args = std::make_tuple(ec, std::move(values)...)]() mutable {
                       // Cleared here, on the executor where cancellation is emitted, so
                       // no emit races the clear. (What the slot held kept its target alive.)
                       asio::get_associated_cancellation_slot(handler).clear();
                       std::apply(std::move(handler), std::move(args));
                   });
        work_.reset();
    }

private:
    asio::executor_work_guard<Executor> work_;  // the handler's executor has work while we wait
    Handler handler_;
};

template <class... Values, class Handler>
std::unique_ptr<AsyncOp<Values...>> make_op(Handler&& handler, OpTag tag, const asio::any_io_executor& fallback) {
    using H = std::decay_t<Handler>;
    return std::make_unique<HandlerOp<H, Values...>>(std::forward<Handler>(handler), tag, fallback);
}

} // namespace detail
MESH_NAMESPACE_END
