#pragma once

#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
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
