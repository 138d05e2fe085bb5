// Must not compile: a zero outgoing capacity would reject every send.
#include <mesh/mesh.hpp>

struct ZeroOutgoing : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 0;
};

int main() {
    mesh::Mesh<mesh::Inproc, ZeroOutgoing> m;
}
