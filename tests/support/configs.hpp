#pragma once

// Queue and message-size configurations the tests share, named by what they set.

#include <mesh/mesh.hpp>

#include <cstddef>

namespace mesh_test {

// Splinter's Mesh::new(1, 1) and Mesh::new(16, 16).
struct Caps1 : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 1;
    static constexpr std::size_t outgoing_capacity = 1;
};
struct Caps16 : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 16;
    static constexpr std::size_t outgoing_capacity = 16;
};
struct Incoming2 : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 2;
};
struct Incoming16 : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 16;
};
struct Incoming64 : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 64;
};
struct Outgoing4 : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 4;
};
struct Outgoing64 : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 64;
};
struct SmallMessages : mesh::DefaultConfig {
    static constexpr std::size_t max_message_size = 64;
};

// How many bytes an in-process connection buffers in each direction.
constexpr std::size_t pipe_capacity = mesh::detail::InprocPipe::capacity;

} // namespace mesh_test
