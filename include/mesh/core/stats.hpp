#pragma once

#include "mesh/version.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

MESH_NAMESPACE_BEGIN

/// Counters of one connection, or of the whole mesh (then queue_depth sums all
/// outgoing queues and connections counts the registered ids).
struct ConnectionStats {
    std::uint64_t messages_in = 0;      ///< messages received from the peer
    std::uint64_t bytes_in = 0;         ///< payload bytes received
    std::uint64_t messages_out = 0;     ///< messages sent: written, or (inproc) put in the peer's queue
    std::uint64_t bytes_out = 0;        ///< payload bytes of those messages
    std::uint64_t rejected_full = 0;    ///< sends refused with queue_full
    std::uint64_t protocol_errors = 0;  ///< connections ended by a malformed or oversize frame
    std::uint64_t discarded = 0;        ///< accepted messages never written (connection ended or removed)
    std::size_t queue_depth = 0;        ///< messages waiting in the outgoing queue now
    std::size_t queue_memory = 0;       ///< bytes the outgoing queue's storage takes now (0 once given back)
    std::size_t connections = 0;        ///< 1 for one connection; for the mesh, the ids registered now
    // Mesh totals only (zero per connection):
    std::uint64_t refused = 0;         ///< accepted connections closed for a duplicate id (0 per connection)
    std::uint64_t events_dropped = 0;  ///< connection events dropped because the event queue was full (0 per connection)
    std::size_t spare_buffers = 0;     ///< heap buffers of spent payloads kept for reuse now, in the pool this mesh shares with the process's others (0 per connection)
};

namespace detail {

// Written by one thread (the reactor) except rejected_full; read by anyone.
struct Counters {
    std::atomic<std::uint64_t> messages_in{0}, bytes_in{0}, messages_out{0}, bytes_out{0};
    std::atomic<std::uint64_t> protocol_errors{0}, discarded{0};
    alignas(64) std::atomic<std::uint64_t> rejected_full{0};  // the only one senders write

    static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
        counter.fetch_add(n, std::memory_order_relaxed);
    }

    void add_to(ConnectionStats& out) const {
        out.messages_in += messages_in.load(std::memory_order_relaxed);
        out.bytes_in += bytes_in.load(std::memory_order_relaxed);
        out.messages_out += messages_out.load(std::memory_order_relaxed);
        out.bytes_out += bytes_out.load(std::memory_order_relaxed);
        out.rejected_full += rejected_full.load(std::memory_order_relaxed);
        out.protocol_errors += protocol_errors.load(std::memory_order_relaxed);
        out.discarded += discarded.load(std::memory_order_relaxed);
    }

    void add_from(const Counters& other) {
        ConnectionStats s;
        other.add_to(s);
        add(messages_in, s.messages_in);
        add(bytes_in, s.bytes_in);
        add(messages_out, s.messages_out);
        add(bytes_out, s.bytes_out);
        add(rejected_full, s.rejected_full);
        add(protocol_errors, s.protocol_errors);
        add(discarded, s.discarded);
    }
};

} // namespace detail
MESH_NAMESPACE_END
