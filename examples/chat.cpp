// A chat of three nodes, each with its own mesh, in one program for the demonstration
// (in real life each would be its own process or machine). Every node listens, dials
// the nodes before it, says hello to everyone it knows and prints what it hears.
#include <mesh/mesh.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Node {
    std::string name;
    mesh::Mesh<mesh::Tcp> mesh;
    std::string endpoint;
};

} // namespace

int main() {
    mesh::Tcp tcp;
    std::vector<Node> nodes(3);
    const char* names[] = {"alice", "bob", "carol"};

    for (std::size_t i = 0; i < nodes.size(); ++i) {
        Node& node = nodes[i];
        node.name = names[i];
        auto listener = tcp.listen("127.0.0.1:0");
        node.endpoint = listener.endpoint();
        // Nodes that dial in are accepted on the reactor and known by their address
        // ("tcp://127.0.0.1:50312"); this node answers them by the id their envelopes
        // carry. The nodes it dials itself it names: "alice", "bob".
        node.mesh.accept_from(std::move(listener));
        for (std::size_t j = 0; j < i; ++j) node.mesh.add(tcp.connect(nodes[j].endpoint), nodes[j].name);
    }

    // Each node greets the peers it dialled; the greeted answer on the same connection.
    for (std::size_t i = 0; i < nodes.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (!nodes[i].mesh.send(nodes[j].name, "hello from " + nodes[i].name).ok()) return 1;

    // Every node hears one hello per node after it, and one answer per node before it.
    int heard = 0;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const std::size_t expected = nodes.size() - 1;
        for (std::size_t n = 0; n < expected; ++n) {
            mesh::Envelope envelope;
            if (nodes[i].mesh.recv_timeout(envelope, std::chrono::seconds(5))) {
                std::cerr << nodes[i].name << " heard nothing\n";
                return 1;
            }
            const std::string text(envelope.payload.view());
            std::cout << nodes[i].name << " heard \"" << text << "\"" << std::endl;
            ++heard;
            if (text.rfind("hello", 0) == 0)  // answer a greeting on the connection it came on
                (void)nodes[i].mesh.send(envelope.id, "welcome, says " + nodes[i].name);
        }
    }
    std::cout << heard << " messages heard" << std::endl;
    return 0;
}
