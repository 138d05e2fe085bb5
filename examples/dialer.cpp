// A node that keeps connections to two peers with dialers, and prints the events they
// report. One peer restarts on the same port halfway through; the dialer connects
// again by itself. The peers live in the same program for the demonstration.
#include <mesh/mesh.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

namespace {

using Mesh = mesh::Mesh<mesh::Tcp>;

const char* kind_name(mesh::ConnectionEvent::Kind kind) {
    switch (kind) {
    case mesh::ConnectionEvent::Kind::connected: return "connected";
    case mesh::ConnectionEvent::Kind::disconnected: return "disconnected";
    case mesh::ConnectionEvent::Kind::refused: return "refused";
    case mesh::ConnectionEvent::Kind::dialed: return "dialed";
    case mesh::ConnectionEvent::Kind::dial_failed: return "dial failed";
    }
    return "?";
}

// Waits for the node's next event and prints it; false after 10 s without one.
bool next_printed(Mesh& node, mesh::ConnectionEvent& event) {
    if (node.next_event(event, std::chrono::seconds(10))) return false;
    std::cout << "  event: " << kind_name(event.kind) << " " << event.id;
    if (event.reason) std::cout << " (" << event.reason.message() << ")";
    std::cout << "\n";
    return true;
}

// Prints the node's events until one of `kind` for `id` arrives.
bool print_events_until(Mesh& node, mesh::ConnectionEvent::Kind kind, const std::string& id) {
    mesh::ConnectionEvent event;
    while (next_printed(node, event))
        if (event.kind == kind && event.id == id) return true;
    return false;
}

// A peer: a mesh that accepts on `bind` and says what it hears.
struct Peer {
    std::string name;
    std::unique_ptr<Mesh> mesh = std::make_unique<Mesh>();
    std::string endpoint;

    Peer(std::string name_, mesh::Tcp& tcp, const std::string& bind) : name(std::move(name_)) {
        auto listener = tcp.listen(bind);
        endpoint = listener.endpoint();
        mesh->accept_from(std::move(listener));
    }
    bool hears(const std::string& text) {
        mesh::Envelope envelope;
        if (mesh->recv_timeout(envelope, std::chrono::seconds(5))) return false;
        std::cout << "  " << name << " heard \"" << envelope.payload.view() << "\"\n";
        return envelope.payload.view() == text;
    }
};

} // namespace

int main() {
    mesh::Tcp tcp;
    Peer north("north", tcp, "127.0.0.1:0"), south("south", tcp, "127.0.0.1:0");

    Mesh node;
    mesh::DialOptions options;
    options.initial_backoff = std::chrono::milliseconds(50);
    options.max_backoff = std::chrono::milliseconds(400);
    mesh::Dialer to_north = node.dial(tcp, north.endpoint, "north", options);
    mesh::Dialer to_south = node.dial(tcp, south.endpoint, "south", options);

    std::cout << "dialing north and south\n";
    bool north_up = false, south_up = false;
    mesh::ConnectionEvent event;
    while (!(north_up && south_up)) {
        if (!next_printed(node, event)) return 1;
        if (event.kind == mesh::ConnectionEvent::Kind::dialed) (event.id == "north" ? north_up : south_up) = true;
    }
    if (!node.send("north", "hello north").ok() || !north.hears("hello north")) return 1;
    if (!node.send("south", "hello south").ok() || !south.hears("hello south")) return 1;

    std::cout << "south restarts on the same port\n";
    const std::string port = south.endpoint.substr(south.endpoint.rfind(':') + 1);
    south.mesh.reset();  // shut down: its connections close, its port is free
    if (!print_events_until(node, mesh::ConnectionEvent::Kind::disconnected, "south")) return 1;
    const auto down = node.send("south", "while down");
    std::cout << "  send while down: " << down.error.message() << "\n";
    Peer south_again("south", tcp, "127.0.0.1:" + port);
    if (!print_events_until(node, mesh::ConnectionEvent::Kind::dialed, "south")) return 1;
    if (!node.send("south", "hello again").ok() || !south_again.hears("hello again")) return 1;

    std::cout << "reconnected to south; north kept its connection\n";
    return 0;
}
