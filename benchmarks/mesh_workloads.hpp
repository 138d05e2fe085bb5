// mesh_workloads.hpp - the mesh side of mesh_bench.
//
// TODO(lead): implement these five functions with mesh.hpp. Until then they are stubs that
// return zeros; mesh_bench prints them as 0 and the ratio column as n/a.
//
// Contract (keep the same shapes as the ZeroMQ side in zmq_workloads.hpp, so the comparison is
// like for like; workloads are defined in /work/shared/reference/performance-anchors.md):
//
//   mesh_w1(size, messages)   one mesh connection over TCP 127.0.0.1 (kernel-chosen port),
//                             one sender thread, one receiver thread. Send 10000 warm-up
//                             messages, wait until the receiver has them all, then
//                             bench::alloc_counting_start(), take t0, send `messages` messages
//                             of `size` bytes; the receiver takes t1 after the last one and calls
//                             bench::alloc_counting_stop(). Return msgs_per_s = messages/(t1-t0),
//                             mb_per_s = msgs_per_s*size/1e6, allocs_per_msg = allocs/messages
//                             (or -1 if not measured).
//   mesh_w2(size, messages)   the same over the in-process transport.
//   mesh_w3(round_trips, warmup)
//                             64 B ping-pong over TCP: an echo side in its own thread, the
//                             client in the calling thread; `warmup` round trips unrecorded, then
//                             `round_trips` recorded; p50/p99/p99.9 in microseconds
//                             (bench::percentile_sorted).
//   mesh_w4(conns, per_conn, size)
//                             `conns` connections into one receiving endpoint; 2 sender threads
//                             each owning conns/2 of them and sending round-robin, `per_conn`
//                             messages of `size` bytes per connection; one receiving thread.
//                             One hello per connection first (all connections up), then the clock
//                             and the allocation counter run from releasing the senders to the
//                             last receipt. Return msgs/s, MB/s, allocs/msg over conns*per_conn.
//   mesh_idle(conns)          `conns` idle TCP connections between a server process (the caller)
//                             and a client process (fork; RLIMIT_NOFILE raised with
//                             bench::raise_nofile_limit()), one small hello per connection, then
//                             RSS growth (bench::rss_kib()) per connection of each process,
//                             baselines taken after the fixed setup, before any connection.
//                             mesh_bench calls this in a freshly exec'd process of its own
//                             (mesh_bench --idle-child mesh N), so the heap starts clean.
//
// All waits must be bounded (timeouts; throw bench::Error with a message on failure).

#pragma once

#include "bench_common.hpp"

#include <cstddef>
#include <cstdint>

// TODO(lead): #include <mesh/mesh.hpp> here once the workloads are implemented.

// TODO(lead): stub - returns zeros.
inline ThroughputResult mesh_w1(std::size_t /*size*/, std::uint64_t /*messages*/) {
    return ThroughputResult{};
}

// TODO(lead): stub - returns zeros.
inline ThroughputResult mesh_w2(std::size_t /*size*/, std::uint64_t /*messages*/) {
    return ThroughputResult{};
}

// TODO(lead): stub - returns zeros.
inline LatencyResult mesh_w3(std::uint64_t /*round_trips*/, std::uint64_t /*warmup*/) {
    return LatencyResult{};
}

// TODO(lead): stub - returns zeros.
inline ThroughputResult mesh_w4(std::size_t /*conns*/, std::uint64_t /*per_conn*/,
                                std::size_t /*size*/) {
    return ThroughputResult{};
}

// TODO(lead): stub - returns zeros.
inline IdleResult mesh_idle(std::size_t /*conns*/) { return IdleResult{}; }
