// Appending across the inline boundary, optimised: GCC 12 at -O2 once warned
// (-Warray-bounds) that Payload::append read past the object. Compiled with -Werror.
#include <mesh/mesh.hpp>

#include <cstdint>
#include <vector>

std::size_t grow(const std::vector<std::uint8_t>& bytes) {
    mesh::Payload p;
    for (std::size_t i = 0; i < bytes.size(); ++i) p.append(&bytes[i], 1);
    return p.size();
}
