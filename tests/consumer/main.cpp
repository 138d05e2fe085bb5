// One round trip over an in-process connection, through the library as a consumer
// sees it; says whether TLS came with it and whether the consumer's own Asio target
// was used (CONSUMER_ASIO, defined by that target).
#include <mesh/mesh.hpp>

#include <cstdio>

#if !defined(CONSUMER_ASIO)
#define CONSUMER_ASIO 0
#endif

int main() {
    mesh::Inproc transport;
    auto listener = transport.listen("inproc://consumer");
    auto client = transport.connect(listener.endpoint());
    mesh::Mesh<mesh::Inproc> m;
    m.add(listener.accept(), "peer");  // throws on error
    if (client.send(mesh::to_payload("ping"))) return 1;
    mesh::Envelope envelope;
    if (m.recv(envelope) || envelope.id != "peer") return 1;
    std::printf("consumer: received ping, tls %d, own asio %d\n", MESH_HAS_TLS, CONSUMER_ASIO);
    return 0;
}
