// Compiles when MESH_ENABLE_TLS, as the command line defines it, gives MESH_HAS_TLS the
// value EXPECTED_HAS_TLS.
#include <mesh/mesh.hpp>

static_assert(MESH_HAS_TLS == EXPECTED_HAS_TLS, "MESH_ENABLE_TLS was not read as documented");
#if MESH_HAS_TLS
static_assert(sizeof(mesh::Tls) > 0, "the TLS transport is declared");
#endif

int main() {}
