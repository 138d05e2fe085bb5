// Heap allocations on the message path, counted by replacing the global operator
// new. Its own program, so the counting touches no other test. Sanitizers bring
// their own allocator, so there the counts are not taken.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/sanitizers.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#if MESH_TEST_ASAN || MESH_TEST_TSAN
#define MESH_COUNTS_ALLOCATIONS 0
#else
#define MESH_COUNTS_ALLOCATIONS 1

namespace {
std::atomic<std::uint64_t> allocations{0};
}

// These replacements take their memory from malloc and give it back with free; GCC's
// -Wmismatched-new-delete sees a free of what a new returned once they are inlined.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size ? size : 1);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

using namespace std::chrono_literals;

namespace {

// A connection id longer than std::string's small buffer, as accepted ids are.
const std::string long_id = "tcp://127.0.0.1:55172-a-long-connection-id";

// Sends `count` payloads of `size` bytes from one mesh and receives them on the
// other into one reused Envelope; returns the allocations made meanwhile.
template <class Sender, class Receiver>
std::uint64_t round(Sender& from, Receiver& to, std::size_t size, int count) {
#if MESH_COUNTS_ALLOCATIONS
    const std::uint64_t before = allocations.load();
#endif
    std::thread producer([&] {
        const std::string bytes(size, 'x');
        for (int sent = 0; sent < count; ++sent)
            while (!from.send(long_id, std::string_view(bytes)).ok()) std::this_thread::yield();
    });
    static mesh::Envelope envelope;  // reused across calls: its id keeps its capacity
    int got = 0;
    while (got < count && !to.recv_timeout(envelope, 10s)) {
        CHECK(envelope.payload.size() == size);
        ++got;
    }
    producer.join();
    CHECK(got == count);
#if MESH_COUNTS_ALLOCATIONS
    return allocations.load() - before;
#else
    return 0;
#endif
}

// At most 32 messages in flight, fewer than the meshes keep spare buffers, so every
// buffer comes back before it is needed again. One thread sends a window of byte
// views, then receives it into reused envelopes. A sender that runs further ahead
// than the pool holds allocates for the difference (mesh_bench shows how much).
// Returns the allocations made meanwhile.
template <class Sender, class Receiver>
std::uint64_t windowed(Sender& from, Receiver& to, std::size_t size, int count) {
#if MESH_COUNTS_ALLOCATIONS
    const std::uint64_t before = allocations.load();
#endif
    static std::vector<mesh::Envelope> received(32);  // reused: allocated before counting
    const std::string bytes(size, 'w');
    for (int sent = 0; sent < count; sent += 32) {
        for (int i = 0; i < 32; ++i) REQUIRE(from.send(long_id, std::string_view(bytes)).ok());
        for (std::size_t got = 0; got < 32;) {
            std::size_t taken = 0;
            REQUIRE(!to.recv_timeout(received.data() + got, 32 - got, taken, 10s));
            got += taken;
        }
        CHECK(received[31].payload.view() == bytes);
    }
#if MESH_COUNTS_ALLOCATIONS
    return allocations.load() - before;
#else
    return 0;
#endif
}

// Two meshes joined by one TCP connection, registered under long_id at both ends.
struct TcpMeshes {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp> a, b;
    TcpMeshes() {
        auto pair = mesh_test::tcp_pair(tcp);
        a.add(std::move(pair.client), long_id);
        b.add(std::move(pair.server), long_id);
    }
};

} // namespace

TEST_CASE("in-process messages up to the inline size allocate nothing per message, at either end") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> a, b;
    auto listener = transport.listen("inproc://alloc");
    a.add(transport.connect(listener.endpoint()), long_id);
    b.add(listener.accept(), long_id);
    round(a, b, mesh::Payload::inline_capacity, 20000);  // warm up
    const auto counted = round(a, b, mesh::Payload::inline_capacity, 100000);
    MESSAGE("inproc, " << mesh::Payload::inline_capacity << " B: " << counted << " allocations for 100000 messages");
    // What remains is Asio's, now and then, for an operation's memory: never per message.
    if (MESH_COUNTS_ALLOCATIONS) CHECK(counted < 200);
    const auto above = round(a, b, mesh::Payload::inline_capacity + 1, 10000);
    MESSAGE("inproc, " << mesh::Payload::inline_capacity + 1 << " B: " << above << " allocations for 10000 messages");
    // At most the sender's copy, moved to the receiver; fewer where the buffers its
    // receiver overwrites are taken again (see the next test).
    if (MESH_COUNTS_ALLOCATIONS) CHECK(above <= 10000 + 100);
}

TEST_CASE("in-process messages above the inline size reuse spent buffers across the two meshes") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> a, b;
    auto listener = transport.listen("inproc://alloc-spare");
    a.add(transport.connect(listener.endpoint()), long_id);
    b.add(listener.accept(), long_id);
    for (const std::size_t size : {mesh::Payload::inline_capacity + 1, std::size_t(1024)}) {
        windowed(a, b, size, 2000);  // warm up
        const auto counted = windowed(a, b, size, 10000);
        MESSAGE("inproc, " << size << " B, at most 32 in flight: " << counted << " allocations for 10000 messages");
        // The receiver's overwritten payloads go to the pool both meshes share, and the
        // sender's next copy takes them: without that sharing, 10,000.
        if (MESH_COUNTS_ALLOCATIONS) CHECK(counted < 10000 / 10);
    }
}

TEST_CASE("TCP messages up to the inline size allocate nothing per message, at either end") {
    TcpMeshes meshes;
    auto& a = meshes.a;
    auto& b = meshes.b;
    round(a, b, 64, 20000);  // warm up: rings, buffers and Asio's handler memory
    const auto counted = round(a, b, mesh::Payload::inline_capacity, 100000);
    MESSAGE("tcp, " << mesh::Payload::inline_capacity << " B: " << counted << " allocations for 100000 messages");
    if (MESH_COUNTS_ALLOCATIONS) CHECK(counted < 1000);  // Asio's, now and then: under 1 in 100 messages
    const auto above = round(a, b, mesh::Payload::inline_capacity + 1, 10000);
    MESSAGE("tcp, " << mesh::Payload::inline_capacity + 1 << " B: " << above << " allocations for 10000 messages");
    // At most one at the sender (its copy) and one at the receiver (the decoded payload);
    // fewer where spare buffers are taken again (see the next test).
    if (MESH_COUNTS_ALLOCATIONS) CHECK(above <= 2 * 10000 + 100);
}

TEST_CASE("TCP messages above the inline size reuse spent buffers: allocations come per window, not per message") {
    TcpMeshes meshes;
    auto& a = meshes.a;
    auto& b = meshes.b;
    for (const std::size_t size : {mesh::Payload::inline_capacity + 1, std::size_t(1024)}) {
        windowed(a, b, size, 2000);  // warm up: the spare buffers, Asio's handler memory
        const auto counted = windowed(a, b, size, 10000);
        MESSAGE("tcp, " << size << " B, at most 32 in flight: " << counted << " allocations for 10000 messages");
        // Without spare buffers: 20,000. What remains comes per window of 32, not per
        // message (about 1.5 a window here).
        if (MESH_COUNTS_ALLOCATIONS) CHECK(counted < 10000 / 10);
    }
}
