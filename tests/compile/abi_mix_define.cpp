// Built against one version of the library: defines a function that takes its Payload.
#include <mesh/mesh.hpp>

#include <cstddef>

std::size_t payload_size(const mesh::Payload& payload) { return payload.size(); }
