// Must not compile with -Werror: the result of the call CALL selects is dropped.
#include <mesh/mesh.hpp>

int main() {
    mesh::Mesh<mesh::Inproc> m;
    mesh::Envelope envelope;
#if CALL == 1
    m.send("peer", mesh::to_payload("x"));
#elif CALL == 2
    m.remove("peer");
#elif CALL == 3
    m.try_recv(envelope);
#endif
}
