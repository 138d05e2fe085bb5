// A TCP echo server: every message that arrives goes back on the connection it came on.
//
//   echo_server [ADDRESS]      default 127.0.0.1:0 (port 0: the system picks one)
//
// It prints the endpoint it listens on, so a client knows where to connect, and runs
// until it is interrupted (Ctrl-C). Try it with echo_client from another terminal.
#include <mesh/mesh.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    const std::string address = argc > 1 ? argv[1] : "127.0.0.1:0";

    mesh::Tcp tcp;
    auto listener = tcp.listen(address);  // throws std::system_error if it cannot
    std::cout << "listening on " << listener.endpoint() << std::endl;

    // The mesh's reactor thread accepts from now on. Each client joins under an id made
    // from its address ("tcp://127.0.0.1:50312"), so replies can be addressed to it.
    mesh::Mesh<mesh::Tcp> mesh;
    mesh.accept_from(std::move(listener));

    mesh::Envelope envelope;
    while (!mesh.recv(envelope)) {  // blocks until a message arrives from any client
        std::cout << "echoing " << envelope.payload.size() << " bytes to " << envelope.id << std::endl;
        // send() never blocks: a full queue or a client that left is an error we may ignore
        // here (the client sees a missing echo), but a real server would count it.
        auto sent = mesh.send(std::move(envelope));
        if (!sent.ok()) std::cout << "  not sent: " << sent.error.message() << std::endl;
    }
    return 0;
}
