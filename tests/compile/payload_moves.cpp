// Receiving over TCP moves inline payloads as whole buffers (Payload's move copies all
// of inline_capacity). Optimised, GCC 12 warns (-Wmaybe-uninitialized) unless every byte
// of that buffer is defined, as Payload's value-initialised buffer makes it. -Werror.
#include <mesh/mesh.hpp>

int main() {
    mesh::Mesh<mesh::Tcp> mesh;
    mesh::Envelope envelope;
    std::size_t taken = 0;
    (void)mesh.try_recv(&envelope, 1, taken);
    return 0;
}
