// Must not compile: accept_from would move from a listener the caller still names.
#include <mesh/mesh.hpp>

int main() {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> m;
    auto listener = transport.listen("inproc://lvalue");
    m.accept_from(listener);
}
