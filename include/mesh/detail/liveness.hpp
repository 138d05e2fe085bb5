#pragma once

#include "mesh/version.hpp"

#include <chrono>
#include <type_traits>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A connection over a byte stream can be left inside a frame, or without input, by
// its peer, and its writes can stall when the peer stops reading. It offers
// frame_unfinished(), bytes_written() and its limits (frame_timeout(),
// read_idle_timeout(), write_stall_timeout(); 0: none), and a Mesh ends the
// connections that pass one. One that moves payloads whole (inproc) has none of this.
template <class C, class = void>
struct has_liveness_limits : std::false_type {};
template <class C>
struct has_liveness_limits<C, std::void_t<decltype(std::declval<const C&>().frame_timeout())>> : std::true_type {};

} // namespace detail
MESH_NAMESPACE_END
