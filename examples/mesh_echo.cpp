// mesh_echo: an echo server and a checking client over a Mesh, for interoperability checks.
//
//   mesh_echo listen ENDPOINT
//       prints "listening ENDPOINT" (the bound endpoint), then echoes every message back
//       on the connection it came from, until SIGINT or SIGTERM (exit 0).
//   mesh_echo send ENDPOINT --count N --size S [--window W]
//       sends N messages of S >= 8 bytes (bytes 0-7: little-endian sequence number,
//       byte k >= 8: k mod 251), at most W unanswered (default 64, 0 = no limit),
//       checks each echo, prints "OK N" and exits 0; otherwise exits 1 with the reason.
#include <mesh/mesh.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

namespace {

using Mesh = mesh::Mesh<mesh::Tcp>;
using namespace std::chrono_literals;

// The mesh never drops: when a connection's queue is full, wait for room.
bool send_waiting(Mesh& m, const std::string& id, mesh::Payload&& payload) {
    for (auto backoff = 1us;; backoff = std::min(backoff * 2, std::chrono::microseconds(1000))) {
        auto result = m.send(id, std::move(payload));
        if (result.ok()) return true;
        if (result.error != mesh::errc::queue_full) return false;
        std::this_thread::sleep_for(backoff);
    }
}

int listen(const std::string& endpoint) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread started below inherits the mask

    mesh::Tcp transport;
    auto listener = transport.listen(endpoint);
    std::cout << "listening " << listener.endpoint() << std::endl;

    Mesh m;
    m.accept_from(std::move(listener));
    std::thread waiter([&m, signals] {
        int signal = 0;
        sigwait(&signals, &signal);
        m.shutdown();
    });
    mesh::Envelope envelope;
    while (!m.recv(envelope)) {
        if (!send_waiting(m, envelope.id, std::move(envelope.payload)))
            continue;  // that client went away; the others carry on
    }
    waiter.join();
    return 0;
}

mesh::Payload make_message(std::uint64_t sequence, std::size_t size) {
    mesh::Payload payload(size);
    for (std::size_t k = 0; k < 8; ++k) payload[k] = static_cast<std::uint8_t>(sequence >> (8 * k));
    for (std::size_t k = 8; k < size; ++k) payload[k] = static_cast<std::uint8_t>(k % 251);
    return payload;
}

int fail(const std::string& reason) {
    std::cerr << "mesh_echo: " << reason << std::endl;
    return 1;
}

int send(const std::string& endpoint, std::uint64_t count, std::size_t size, std::uint64_t window) {
    if (size < 8) return fail("--size must be at least 8");
    mesh::Tcp transport;
    std::error_code ec;
    auto connection = transport.connect(endpoint, ec);
    if (ec) return fail("connect " + endpoint + ": " + ec.message());
    Mesh m;
    const std::string id = "server";
    m.add(std::move(connection), id);

    std::uint64_t sent = 0, received = 0;
    mesh::Envelope echo;
    while (received < count) {
        while (sent < count && (window == 0 || sent - received < window)) {
            auto result = m.send(id, make_message(sent, size));
            if (result.error == mesh::errc::queue_full) break;
            if (!result.ok()) return fail("send: " + result.error.message() + " " + result.reason.message());
            ++sent;
        }
        if (auto recv_ec = m.recv_timeout(echo, sent < count ? 1ms : 10000ms)) {
            if (recv_ec != mesh::errc::timeout) return fail("recv: " + recv_ec.message());
            mesh::ConnectionEvent event;
            if (!m.try_event(event)) return fail("disconnected: " + event.reason.message());
            if (sent == count) return fail("no progress for 10 s");
            continue;
        }
        if (echo.payload != make_message(received, size))
            return fail("mismatch at message " + std::to_string(received));
        ++received;
    }
    std::cout << "OK " << count << std::endl;
    return 0;
}

int usage() {
    std::cerr << "usage: mesh_echo listen ENDPOINT\n"
                 "       mesh_echo send ENDPOINT --count N --size S [--window W]\n";
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string mode = argv[1], endpoint = argv[2];
    try {
        if (mode == "listen" && argc == 3) return listen(endpoint);
        if (mode != "send") return usage();
        std::uint64_t count = 0, window = 64;
        std::size_t size = 0;
        for (int i = 3; i + 1 < argc; i += 2) {
            const std::string option = argv[i];
            const auto value = std::strtoull(argv[i + 1], nullptr, 10);
            if (option == "--count") count = value;
            else if (option == "--size") size = value;
            else if (option == "--window") window = value;
            else return usage();
        }
        if ((argc - 3) % 2 != 0) return usage();
        return send(endpoint, count, size, window);
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
