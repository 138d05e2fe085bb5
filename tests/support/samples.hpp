#pragma once

// Small values and string helpers many tests use.

#include <mesh/mesh.hpp>

#include <string>

namespace mesh_test {

inline const mesh::Payload hello = mesh::to_payload("hello");
inline const mesh::Payload world = mesh::to_payload("world");

// "tcp://127.0.0.1:4321" -> "4321".
inline std::string port_of(const std::string& endpoint) { return endpoint.substr(endpoint.rfind(':') + 1); }

inline bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

} // namespace mesh_test
