#pragma once

#include "mesh/version.hpp"
#include "mesh/envelope.hpp"

#include <cstddef>
#include <type_traits>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A connection whose own bounded queue can take messages from any thread (inproc)
// is sent to directly: its queue is the outgoing queue, and the reactor is not involved.
// Such a connection offers try_send_direct, direct_queue_depth, async_room(limit,
// handler) (a wait for room, for async_send) and sends_directly():
// a constant true when every connection of the type sends directly (then it needs no
// async_write_batch), or a run-time answer when the type may hold either kind (multi).
template <class C, class = void>
struct has_direct_send : std::false_type {};
template <class C>
struct has_direct_send<
    C, std::void_t<decltype(std::declval<C&>().try_send_direct(std::declval<Payload&>(), std::size_t()))>>
    : std::true_type {};

// True when C::sends_directly() is a constant expression that is true: connections of
// type C never use the outgoing ring and the reactor's writer.
template <class C, class = void>
struct always_sends_directly : std::false_type {};
template <class C>
struct always_sends_directly<C, std::enable_if_t<has_direct_send<C>::value && C::sends_directly()>>
    : std::true_type {};

template <class C>
bool connection_sends_directly([[maybe_unused]] const C& connection) noexcept {
    if constexpr (has_direct_send<C>::value) return connection.sends_directly();
    else return false;
}

} // namespace detail
MESH_NAMESPACE_END
