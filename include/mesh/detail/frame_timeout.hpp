#pragma once

#include "mesh/version.hpp"

#include <chrono>
#include <type_traits>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A connection that reads frames from a byte stream can be left inside one by its
// peer; it offers frame_unfinished() and frame_timeout(), and a Mesh times those that
// are unfinished and ends the overdue ones. One that moves payloads whole (inproc) is
// never inside a frame.
template <class C, class = void>
struct has_frame_timeout : std::false_type {};
template <class C>
struct has_frame_timeout<C, std::void_t<decltype(std::declval<const C&>().frame_timeout())>> : std::true_type {};

} // namespace detail
MESH_NAMESPACE_END
