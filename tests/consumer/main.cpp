// One round trip over an in-process connection, through the library as a consumer sees it.
#include <mesh/mesh.hpp>

#include <cstdio>

int main() {
    mesh::Inproc transport;
    auto listener = transport.listen("inproc://consumer");
    auto client = transport.connect(listener.endpoint());
    mesh::Mesh<mesh::Inproc> m;
    m.add(listener.accept(), "peer");  // throws on error
    if (client.send(mesh::to_payload("ping"))) return 1;
    mesh::Envelope envelope;
    if (m.recv(envelope) || envelope.id != "peer") return 1;
    std::puts("consumer: received ping");
    return 0;
}
