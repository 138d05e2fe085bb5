// A TCP echo client: sends each word given on the command line to an echo server and
// prints what comes back.
//
//   echo_client ENDPOINT WORD...      for example: echo_client tcp://127.0.0.1:4000 hello mesh
#include <mesh/mesh.hpp>

#include <chrono>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: echo_client ENDPOINT WORD...\n";
        return 2;
    }
    mesh::Tcp tcp;
    std::error_code ec;
    auto connection = tcp.connect(argv[1], ec);  // the error_code form: no exception
    if (ec) {
        std::cerr << "cannot connect to " << argv[1] << ": " << ec.message() << "\n";
        return 1;
    }

    mesh::Mesh<mesh::Tcp> mesh;
    mesh.add(std::move(connection), "server");  // from now on, "server" names it

    for (int i = 2; i < argc; ++i) {
        const std::string word = argv[i];
        // send(id, bytes) copies the bytes into the connection's queue.
        if (auto sent = mesh.send("server", word); !sent.ok()) {
            std::cerr << "send failed: " << sent.error.message() << "\n";
            return 1;
        }
        mesh::Envelope reply;
        if (auto got = mesh.recv_timeout(reply, std::chrono::seconds(5))) {
            std::cerr << "no echo: " << got.message() << "\n";
            return 1;
        }
        std::cout << "echo from " << reply.id << ": " << reply.payload.view() << std::endl;
    }
    return 0;
}
