#pragma once

#include "mesh/version.hpp"

#include <cstddef>
#include <cstdint>

MESH_NAMESPACE_BEGIN

/// Compile-time knobs. Derive from DefaultConfig and override what differs:
/// @code
/// struct SmallQueues : mesh::DefaultConfig { static constexpr std::size_t outgoing_capacity = 64; };
/// mesh::Mesh<mesh::Inproc, SmallQueues> m;
/// @endcode
/// A Mesh checks its Config at compile time (static_assert): both capacities must be
/// powers of two, every knob at least 1, and max_message_size at most 0xFFFFFFFF.
struct DefaultConfig {
    /// Envelopes waiting between the reactor and the receivers (shared by all copies).
    static constexpr std::size_t incoming_capacity = 4096;
    /// Messages waiting to be written, per connection.
    static constexpr std::size_t outgoing_capacity = 1024;
    /// Largest payload accepted by send and from peers.
    static constexpr std::size_t max_message_size = 16 * 1024 * 1024;
    /// Connection events waiting for next_event; beyond it new ones are dropped and counted.
    static constexpr std::size_t event_capacity = 4096;
    /// Heap buffers of spent payloads up to this capacity are kept for the next
    /// payloads above the inline size (at most 256 of them, in a pool shared by the
    /// process's meshes with the same value, freed after a
    /// second or two without use); 0 keeps none. At most 64 KiB.
    static constexpr std::size_t pooled_buffer_max_size = 16 * 1024;
};

namespace detail {

constexpr bool is_power_of_two(std::size_t n) { return n != 0 && (n & (n - 1)) == 0; }

template <class Config>
constexpr bool validate_config() {
    static_assert(Config::incoming_capacity > 0,
                  "Config::incoming_capacity must be at least 1: a zero-capacity queue can never deliver");
    static_assert(Config::outgoing_capacity > 0,
                  "Config::outgoing_capacity must be at least 1: a zero-capacity queue rejects every send");
    static_assert(is_power_of_two(Config::incoming_capacity),
                  "Config::incoming_capacity must be a power of two");
    static_assert(is_power_of_two(Config::outgoing_capacity),
                  "Config::outgoing_capacity must be a power of two");
    static_assert(Config::event_capacity > 0, "Config::event_capacity must be at least 1");
    static_assert(Config::max_message_size > 0, "Config::max_message_size must be at least 1 byte");
    static_assert(Config::max_message_size <= 0xFFFFFFFFull,
                  "Config::max_message_size must fit the 32-bit frame length field");
    static_assert(Config::pooled_buffer_max_size <= 64 * 1024,
                  "Config::pooled_buffer_max_size must be at most 64 KiB: a partial frame's memory is bounded by "
                  "what arrived plus 64 KiB");
    return true;
}

} // namespace detail
MESH_NAMESPACE_END
