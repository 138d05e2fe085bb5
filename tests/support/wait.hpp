#pragma once

#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ostream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace mesh_test {

using namespace std::chrono_literals;

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// As wait_until, but yields instead of sleeping between tries: for conditions that
// another thread makes true within microseconds (room in a queue being drained).
template <class Condition>
bool spin_until(Condition condition, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::yield();
    }
    return true;
}

// How long a soak runs: MESH_SOAK_SECONDS seconds when set, else `fallback`.
inline std::chrono::milliseconds soak_duration(std::chrono::milliseconds fallback) {
    if (const char* text = std::getenv("MESH_SOAK_SECONDS")) {
        const long seconds = std::strtol(text, nullptr, 10);
        if (seconds > 0) return std::chrono::seconds(seconds);
    }
    return fallback;
}

// Both ends of one in-process connection.
struct InprocPair {
    mesh::InprocConnection client;  // the connecting end
    mesh::InprocConnection server;  // the accepted end
};

inline InprocPair connected_pair(mesh::Inproc& transport, const std::string& name) {
    auto listener = transport.listen(name);
    InprocPair pair;
    pair.client = transport.connect(listener.endpoint());
    pair.server = listener.accept();
    return pair;
}

// A payload that carries a 32-bit sequence number (little endian), padded to `size`.
inline mesh::Payload numbered(std::uint32_t n, std::size_t size = 4) {
    mesh::Payload p(size < 4 ? 4 : size, 0);
    for (int i = 0; i < 4; ++i) p[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
    return p;
}

inline std::uint32_t number_of(const mesh::Payload& p) {
    std::uint32_t n = 0;
    for (int i = 0; i < 4 && static_cast<std::size_t>(i) < p.size(); ++i)
        n |= static_cast<std::uint32_t>(p[static_cast<std::size_t>(i)]) << (8 * i);
    return n;
}

inline std::string text(const mesh::Payload& p) { return std::string(p.begin(), p.end()); }

// Sends numbered messages (from 0) to `id`, whose peer does not read, until the mesh
// refuses with queue_full and nothing more has been accepted for `quiet`: the
// outgoing queue and the pipe behind it are full. Counts refusals in `rejected`.
// Returns how many were accepted; stops early on any other error.
template <class M>
std::size_t fill_until_full(M& m, const std::string& id, std::size_t& rejected,
                            std::chrono::milliseconds quiet = 50ms) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + 10s;
    auto last_progress = clock::now();
    std::size_t accepted = 0;
    while (clock::now() < deadline) {
        const auto result = m.send(id, numbered(static_cast<std::uint32_t>(accepted)));
        if (result.ok()) {
            ++accepted;
            last_progress = clock::now();
            continue;
        }
        if (result.error != mesh::errc::queue_full) break;
        ++rejected;
        if (clock::now() - last_progress >= quiet) break;
        std::this_thread::yield();
    }
    return accepted;
}

// Waits until the mesh has stopped writing to `id`: its messages_out count stays the
// same for `quiet`. Then accepted - messages_out is what still waits to be written.
template <class M>
bool settled(const M& m, const std::string& id, std::chrono::milliseconds quiet = 20ms) {
    using clock = std::chrono::steady_clock;
    auto last = m.stats(id).messages_out;
    auto since = clock::now();
    return wait_until([&] {
        const auto now = m.stats(id).messages_out;
        if (now != last) {
            last = now;
            since = clock::now();
        }
        return clock::now() - since >= quiet;
    }, 5s);
}

// Sends, waiting for room when the outgoing queue is full (send never blocks).
template <class M>
mesh::SendResult send_waiting(M& m, const std::string& id, mesh::Payload payload) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        auto result = m.send(id, std::move(payload));
        if (result.error != mesh::errc::queue_full || std::chrono::steady_clock::now() > deadline) return result;
        std::this_thread::yield();
    }
}

} // namespace mesh_test

// Failed checks print an error code as "category:value (message)".
namespace doctest {
template <>
struct StringMaker<std::error_code> {
    static String convert(const std::error_code& ec) {
        if (!ec) return "success";
        return (std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + " (" + ec.message() + ")").c_str();
    }
};
} // namespace doctest
