// Fuzzes a whole Mesh<Tcp> from the network side. One mesh for the process
// accepts on 127.0.0.1 (accept_from, unique ids); a thread echoes every envelope
// back to the connection it came from. Each input: a raw client connects, sends
// the version hello and the bytes (or the bytes alone), and goes away; then a
// healthy client must still connect and get its echo in time. Before the next
// input every connection must have been reported (connected, then disconnected)
// or failed its handshake, and is removed, so nothing grows from run to run.
//
// Input: [mode] [bytes...]
//   mode bit 0: send the bytes without the hello in front;
//        bits 1-2: how the raw client leaves: 0 or 3 close (a reset if a reply
//                  was left unread), 1 half close then wait until the mesh closes
//                  its end, 2 a reset (SO_LINGER 0).

#include <mesh/mesh.hpp>

#include "fuzz_check.hpp"
#include "support/raw_peer.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using mesh_test::Bytes;

// Longer than any wait below, so a missed close shows as a failed wait, not as a timeout.
mesh::TcpOptions server_options() {
    mesh::TcpOptions options;
    options.handshake_timeout = 10s;
    return options;
}

constexpr auto kDeadline = 5s;

struct Harness {
    mesh::Tcp server_tcp{server_options()};
    mesh::Tcp client_tcp;
    mesh::Mesh<mesh::Tcp> mesh;
    std::string endpoint;
    std::shared_ptr<const mesh::ListenerStats> stats;
    std::thread echo;
    std::uint64_t dialed = 0, connected = 0, disconnected = 0, probes = 0;

    Harness() {
        auto listener = server_tcp.listen("127.0.0.1:0");
        endpoint = listener.endpoint();
        stats = listener.stats();
        mesh.accept_from(std::move(listener),
                         [n = std::uint64_t{0}](const mesh::TcpConnection&) mutable { return "c" + std::to_string(n++); });
        echo = std::thread([this] {
            mesh::Envelope envelope;
            while (!mesh.recv(envelope)) (void)mesh.send(std::move(envelope));  // a gone peer's echo is dropped
        });
    }
    ~Harness() {
        mesh.shutdown();
        echo.join();
    }

    // Every dialed connection has ended its handshake, and every accepted one
    // has been announced, has ended and has been removed.
    bool settled() const {
        const auto accepted = stats->accepted.load();
        return accepted + stats->handshakes_failed.load() + stats->over_limit.load() == dialed &&
               connected == accepted && disconnected == connected;
    }

    void drain() {
        const auto deadline = std::chrono::steady_clock::now() + kDeadline;
        while (!settled()) {
            FUZZ_CHECK(std::chrono::steady_clock::now() < deadline);
            mesh::ConnectionEvent event;
            if (mesh.next_event(event, 2ms)) continue;
            // The ids are unique: a refusal would mean the mesh still holds one.
            FUZZ_CHECK(event.kind != mesh::ConnectionEvent::Kind::refused);
            if (event.kind == mesh::ConnectionEvent::Kind::connected) {
                ++connected;
            } else {
                ++disconnected;
                // Frees the id and what the connection held, unless the mesh has
                // already forgotten the dead connection by itself.
                std::error_code ec;
                (void)mesh.remove(event.id, ec);
                FUZZ_CHECK(!ec || ec == mesh::errc::not_found);
            }
        }
    }

    void raw_client(const std::uint8_t* data, std::size_t size) {
        const std::uint8_t mode = data[0];
        Bytes bytes;
        if (!(mode & 1)) bytes = mesh_test::raw_hello(1, 1);
        bytes.insert(bytes.end(), data + 1, data + size);
        auto raw = mesh_test::raw_connect(endpoint);
        FUZZ_CHECK(raw.valid());
        ++dialed;
        raw.write_all(bytes, 2000ms);  // may fail: the mesh may close first
        switch ((mode >> 1) & 3) {
        case 1:
            raw.shutdown_write();
            FUZZ_CHECK(raw.wait_closed(kDeadline));  // the mesh must notice the end
            break;
        case 2: raw.reset(); break;
        default: raw.close(); break;
        }
    }

    void healthy_client() {
        std::error_code ec;
        auto client = client_tcp.connect(endpoint, ec);
        FUZZ_CHECK(!ec);
        ++dialed;
        const std::string text = "probe " + std::to_string(probes++);
        const mesh::Payload sent(text.begin(), text.end());
        FUZZ_CHECK(!client.send(sent));
        mesh::Payload got;
        FUZZ_CHECK(!client.recv_for(got, kDeadline));
        FUZZ_CHECK(got == sent);
        client.disconnect();
    }
};

Harness& harness() {
    // The error categories are function-local statics too: made before the
    // harness, they are destroyed after it, so the reactor never meets a dead one
    // while the harness shuts it down at exit.
    (void)mesh::error_category();
    (void)asio::error::get_system_category();
    (void)asio::error::get_misc_category();
    (void)asio::error::get_netdb_category();
    (void)asio::error::get_addrinfo_category();
    static Harness h;
    return h;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::signal(SIGPIPE, SIG_IGN);
    harness();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    auto& h = harness();
    h.raw_client(data, size);
    h.healthy_client();
    h.drain();
    return 0;
}
