// Built against another (or the same) version: calls the function abi_mix_define.cpp defines.
#include <mesh/mesh.hpp>

#include <cstddef>

std::size_t payload_size(const mesh::Payload& payload);

int main() {
    const mesh::Payload payload{1, 2, 3};
    return payload_size(payload) == 3 ? 0 : 1;
}
