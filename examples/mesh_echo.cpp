// mesh_echo: an echo server and a checking client over a Mesh, for interoperability checks.
//
//   mesh_echo listen ENDPOINT [TLS]
//       prints "listening ENDPOINT" (the bound endpoint), then echoes every message back
//       on the connection it came from, until SIGINT or SIGTERM (exit 0).
//   mesh_echo send ENDPOINT --count N --size S [--window W] [TLS]
//       sends N messages of S >= 8 bytes (bytes 0-7: little-endian sequence number,
//       byte k >= 8: k mod 251), at most W unanswered (default 64, 0 = no limit),
//       checks each echo, prints "OK N" and exits 0; otherwise exits 1 with the reason.
//
// ENDPOINT is tcp://host:port (or host:port), tcps://host:port or unix:///path.
// TLS, for tcps://: --ca FILE --cert FILE --key FILE (one CA, certificate and key for
// both roles, as Splinter takes them), or --insecure (no verification; a warning).
#include <mesh/mesh.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using Mesh = mesh::Mesh<mesh::Multi>;
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

int listen(mesh::Multi& transport, const std::string& endpoint) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread started below inherits the mask

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

int send(mesh::Multi& transport, const std::string& endpoint, std::uint64_t count, std::size_t size,
         std::uint64_t window) {
    if (size < 8) return fail("--size must be at least 8");
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
    std::cerr << "usage: mesh_echo listen ENDPOINT [TLS]\n"
                 "       mesh_echo send ENDPOINT --count N --size S [--window W] [TLS]\n"
                 "TLS:   --ca FILE --cert FILE --key FILE | --insecure [--cert FILE --key FILE]\n";
    return 2;
}

struct Arguments {
    std::uint64_t count = 0, window = 64;
    std::size_t size = 0;
    std::string ca, cert, key;
    bool insecure = false;
};

bool parse(int argc, char** argv, Arguments& a) {
    for (int i = 3; i < argc; ++i) {
        const std::string option = argv[i];
        if (option == "--insecure") {
            a.insecure = true;
            continue;
        }
        if (i + 1 >= argc) return false;
        const std::string value = argv[++i];
        if (option == "--count") a.count = std::strtoull(value.c_str(), nullptr, 10);
        else if (option == "--size") a.size = std::strtoull(value.c_str(), nullptr, 10);
        else if (option == "--window") a.window = std::strtoull(value.c_str(), nullptr, 10);
        else if (option == "--ca") a.ca = value;
        else if (option == "--cert") a.cert = value;
        else if (option == "--key") a.key = value;
        else return false;
    }
    return true;
}

// TLS is configured only when asked for: tcp:// and unix:// need none of it.
void configure_tls(mesh::Multi& transport, const Arguments& a) {
    if (a.ca.empty() && a.cert.empty() && a.key.empty() && !a.insecure) return;
#if MESH_HAS_TLS
    auto options = mesh::TlsOptions::from_files(a.ca, a.cert, a.key);
    options.insecure = a.insecure;
    options.localhost_for_ip = true;  // as Splinter: nodes dialled by IP present "localhost"
    transport.get<mesh::Tls>() = mesh::Tls(options);
#else
    (void)transport;
    throw std::runtime_error("this mesh_echo was built without TLS (OpenSSL)");
#endif
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string mode = argv[1], endpoint = argv[2];
    Arguments a;
    if ((mode != "listen" && mode != "send") || !parse(argc, argv, a)) return usage();
    try {
        mesh::Multi transport;
        configure_tls(transport, a);
        if (mode == "listen") return listen(transport, endpoint);
        return send(transport, endpoint, a.count, a.size, a.window);
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
