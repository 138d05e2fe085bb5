// Must not compile: pooled buffers above 64 KiB would break the bound on what a
// partial frame holds (what arrived plus 64 KiB).
#include <mesh/mesh.hpp>

struct LargePooledBuffers : mesh::DefaultConfig {
    static constexpr std::size_t pooled_buffer_max_size = 64 * 1024 + 1;
};

int main() {
    mesh::Mesh<mesh::Tcp, LargePooledBuffers> m;
}
