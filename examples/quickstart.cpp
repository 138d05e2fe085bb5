// The Splinter mesh module's own example, in C++: two ends of an in-process
// connection in one mesh, one message, then both ends taken back out.
#include <mesh/mesh.hpp>

#include <iostream>
#include <string>

int main() {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> mesh;
    auto listener = transport.listen("inproc://my-connection");

    mesh.add(transport.connect(listener.endpoint()), "client");
    mesh.add(listener.accept(), "server");
    std::cout << "added \"client\" and \"server\" over " << listener.endpoint() << "\n";

    auto sent = mesh.send(mesh::Envelope("client", mesh::to_payload("hello")));
    std::cout << "send to client: " << (sent.ok() ? "queued" : sent.error.message()) << "\n";

    mesh::Envelope envelope;
    if (auto ec = mesh.recv(envelope)) {
        std::cout << "recv failed: " << ec.message() << "\n";
        return 1;
    }
    std::cout << "received \"" << std::string(envelope.payload.begin(), envelope.payload.end())
              << "\" from \"" << envelope.id << "\"\n";

    // remove hands the connections back, still usable on their own. Had "client"
    // been dropped instead, the mesh would have seen "server" disconnect.
    auto client = mesh.remove("client");
    auto server = mesh.remove("server");
    std::cout << "removed both; client endpoint " << client.remote_endpoint() << "\n";

    auto report = mesh.shutdown();
    std::cout << "shut down, " << report.discarded_outgoing << " outgoing messages discarded\n";
    return 0;
}
