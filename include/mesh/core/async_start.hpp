#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/async_op.hpp"
#include "mesh/error.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/system_executor.hpp>

#include <cstdint>
#include <memory>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// Which handle started an operation, for that handle's cancel(). A copy is a new
// handle with a scope of its own; assignment keeps the target's.
struct Scope {
    std::uint64_t id = OpTag::next();

    Scope() = default;
    Scope(const Scope&) noexcept {}
    Scope& operator=(const Scope&) noexcept { return *this; }
};

// Starts an asynchronous operation whose handler takes (std::error_code, Values...):
// wraps the handler into an operation and gives it to start(core, op, slot), or
// completes it with `absent` when there is no core (a moved-from handle, or a
// sender bound to nothing).
template <class... Values, class Core, class Handler, class Start>
void start_async(const std::shared_ptr<Core>& core, std::uint64_t scope, Handler&& handler, Start&& start,
                 errc absent = errc::shut_down) {
    asio::cancellation_slot slot = asio::get_associated_cancellation_slot(handler);
    auto op = make_op<Values...>(std::forward<Handler>(handler), OpTag{OpTag::next(), scope},
                                 core ? core->default_executor() : asio::any_io_executor(asio::system_executor()));
    if (!core) return op->complete(absent, Values()...);
    start(*core, std::move(op), slot);
}

} // namespace detail
MESH_NAMESPACE_END
