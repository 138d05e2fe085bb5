// Mesh::dial: a connection kept alive under a fixed id.
#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#include "support/raw_peer.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using TcpMesh = mesh::Mesh<mesh::Tcp>;
using Kind = mesh::ConnectionEvent::Kind;

namespace {

// The next event of `kind` (others are skipped), within `timeout`.
std::optional<mesh::ConnectionEvent> next_of(TcpMesh& m, Kind kind, std::chrono::milliseconds timeout = 10s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left <= 0ms) return std::nullopt;
        auto event = mesh_test::next_event(m, left);
        if (!event) return std::nullopt;
        if (event->kind == kind) return event;
    }
}

// True when `text` arrives within 10 s (other envelopes are skipped).
bool receives(TcpMesh& m, const std::string& text) {
    mesh::Envelope envelope;
    while (!m.recv_timeout(envelope, 10s))
        if (envelope.payload.view() == text) return true;
    return false;
}

// Waits from `initial` growing by `multiplier` up to `max`, within `jitter`.
mesh::DialOptions waits(std::chrono::milliseconds initial, std::chrono::milliseconds max, double multiplier = 2,
                        double jitter = 0.2) {
    mesh::DialOptions options;
    options.initial_backoff = initial;
    options.max_backoff = max;
    options.multiplier = multiplier;
    options.jitter = jitter;
    return options;
}

// A loopback endpoint nobody listens on.
std::string closed_endpoint() { return "tcp://127.0.0.1:" + std::to_string(mesh_test::closed_port()); }

std::string port_of(const std::string& endpoint) { return endpoint.substr(endpoint.rfind(':') + 1); }

} // namespace

TEST_SUITE("dialer") {

TEST_CASE("a dialer reconnects after its peer restarts on the same port, and sends while it is down get disconnected") {
    mesh::Tcp tcp;
    TcpMesh near;
    std::string endpoint;
    const auto options = waits(50ms, 200ms);
    {
        TcpMesh far;
        auto listener = tcp.listen("tcp://127.0.0.1:0");
        endpoint = listener.endpoint();
        far.accept_from(std::move(listener));
        auto dialer = near.dial(tcp, endpoint, "peer", options);
        const auto dialed = next_of(near, Kind::dialed);
        REQUIRE(dialed.has_value());
        CHECK(dialed->id == "peer");
        REQUIRE(near.send("peer", "one").ok());
        CHECK(receives(far, "one"));

        // A sender that keeps sending through the restart: it may see disconnected,
        // never not_found, since the new connection takes the old one's place at once.
        std::atomic<bool> sending{true};
        std::atomic<int> not_found{0}, sent{0};
        std::thread background([&] {
            while (sending) {
                const auto result = near.send("peer", "x");
                if (result.error == mesh::errc::not_found) ++not_found;
                if (result.ok()) ++sent;
                std::this_thread::yield();
            }
        });
        struct Join {
            std::atomic<bool>& flag;
            std::thread& thread;
            ~Join() {
                flag = false;
                thread.join();
            }
        } join{sending, background};

        far.shutdown();  // the peer goes away
        const auto gone = next_of(near, Kind::disconnected);
        REQUIRE(gone.has_value());
        CHECK(gone->id == "peer");
        // Down: the id stays, and a send says why.
        const auto down = near.send("peer", "lost");
        CHECK(down.error == mesh::errc::disconnected);
        CHECK(down.reason == gone->reason);
        // Attempts fail while nobody listens, each reported.
        const auto failed = next_of(near, Kind::dial_failed);
        REQUIRE(failed.has_value());
        CHECK(failed->id == "peer");
        CHECK(failed->reason == mesh::errc::connection_refused);
        CHECK(near.ids() == std::vector<std::string>{"peer"});

        // The peer comes back on the same port.
        TcpMesh again;
        again.accept_from(tcp.listen("tcp://127.0.0.1:" + port_of(endpoint)));
        REQUIRE(next_of(near, Kind::dialed).has_value());
        REQUIRE(near.send("peer", "two").ok());
        CHECK(receives(again, "two"));
        CHECK(mesh_test::wait_until([&] { return sent > 0; }));
        sending = false;
        CHECK(not_found == 0);
        dialer.stop();
        // Stopping leaves the last connection in the mesh. The background sender may
        // have filled the way to `again`, which takes nothing by itself: drain it until
        // a send goes in.
        std::vector<mesh::Envelope> drained(256);
        REQUIRE(mesh_test::wait_until([&] {
            if (near.send("peer", "three").ok()) return true;
            std::size_t taken = 0;
            while (!again.try_recv(drained.data(), drained.size(), taken)) {
            }
            return false;
        }));
        CHECK(receives(again, "three"));
    }
}

TEST_CASE("a dialer's waits grow by the multiplier up to the cap, within the jitter") {
    mesh::Tcp tcp;
    TcpMesh m;
    auto dialer = m.dial(tcp, closed_endpoint(), "nobody", waits(100ms, 400ms, 2, 0.2));
    std::vector<std::chrono::steady_clock::time_point> at;
    for (int i = 0; i < 6; ++i) {
        REQUIRE(next_of(m, Kind::dial_failed, 10s).has_value());
        at.push_back(std::chrono::steady_clock::now());
    }
    dialer.stop();
    const double expected[] = {100, 200, 400, 400, 400};
    for (std::size_t i = 0; i + 1 < at.size(); ++i) {
        const double ms = std::chrono::duration<double, std::milli>(at[i + 1] - at[i]).count();
        CAPTURE(i);
        CAPTURE(ms);
        CHECK(ms >= expected[i] * 0.8 - 5);  // never shorter than the jitter allows
        CHECK(ms <= expected[i] * 1.2 + 250);  // plus a failed connect and scheduling
    }
}

TEST_CASE("stopping a dialer during a backoff wait returns at once and ends its attempts") {
    mesh::Tcp tcp;
    TcpMesh m;
    auto dialer = m.dial(tcp, closed_endpoint(), "nobody", waits(30s, 30s));
    REQUIRE(next_of(m, Kind::dial_failed).has_value());
    const auto started = std::chrono::steady_clock::now();
    dialer.stop();
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    CHECK(mesh_test::next_event(m, 300ms) == std::nullopt);
    CHECK(m.ids().empty());  // it never connected
}

TEST_CASE("a dialer leaves an id held by another connection alone, and reports it") {
    mesh::Tcp tcp;
    TcpMesh m, far;
    auto listener = tcp.listen("tcp://127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    far.accept_from(std::move(listener));
    auto pair = mesh_test::tcp_pair(tcp);
    m.add(std::move(pair.client), "taken");
    auto dialer = m.dial(tcp, endpoint, "taken", waits(50ms, 30s));
    const auto failed = next_of(m, Kind::dial_failed);
    REQUIRE(failed.has_value());
    CHECK(failed->reason == mesh::errc::duplicate_id);
    // Once the id is free, the dialer takes it.
    (void)m.remove("taken");
    REQUIRE(next_of(m, Kind::dialed).has_value());
    REQUIRE(m.send("taken", "hello").ok());
    mesh::Envelope envelope;
    REQUIRE(!far.recv_timeout(envelope, 10s));
    CHECK(envelope.payload.view() == "hello");
}

TEST_CASE("a dialer ends when its mesh shuts down, without being stopped") {
    // A listener that accepts at the TCP level and never answers the version
    // handshake: every attempt reaches it, then fails at the handshake deadline.
    mesh_test::RawListener listener;
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(listener.port());
    mesh::TcpOptions tcp_options;
    tcp_options.handshake_timeout = 50ms;
    mesh::Tcp tcp(tcp_options);
    mesh::Dialer dialer;
    {
        TcpMesh m;
        dialer = m.dial(tcp, endpoint, "silent", waits(20ms, 20ms));
        const auto failed = next_of(m, Kind::dial_failed);
        REQUIRE(failed.has_value());
        CHECK(failed->reason == mesh::errc::timeout);
    }  // the last copy goes: the mesh shuts down
    // An attempt under way may still arrive; after it, none does.
    int arrived = 0;
    for (int i = 0; i < 10 && listener.accept(300ms).valid(); ++i) ++arrived;
    CAPTURE(arrived);
    CHECK(arrived <= 2);  // attempts every 70 ms or so would bring about 4 in 300 ms, on and on
    CHECK(!listener.accept(500ms).valid());
    const auto started = std::chrono::steady_clock::now();
    dialer.stop();  // its thread has ended already
    CHECK(std::chrono::steady_clock::now() - started < 100ms);
}

TEST_CASE("a connection made resets a dialer's wait") {
    mesh::Tcp tcp;
    TcpMesh near;
    const auto options = waits(50ms, 3s, 8, 0);
    // Nobody listens at first: the waits grow to 50 ms, 400 ms, 3 s.
    const std::uint16_t port = mesh_test::closed_port();
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
    auto dialer = near.dial(tcp, endpoint, "peer", options);
    for (int i = 0; i < 3; ++i) REQUIRE(next_of(near, Kind::dial_failed).has_value());
    auto far = std::make_unique<TcpMesh>();
    far->accept_from(tcp.listen(endpoint));
    REQUIRE(next_of(near, Kind::dialed).has_value());  // after the 3 s wait
    far.reset();  // the peer goes: the next attempt comes after 50 ms, not 3 s
    REQUIRE(next_of(near, Kind::disconnected).has_value());
    const auto gone = std::chrono::steady_clock::now();
    REQUIRE(next_of(near, Kind::dial_failed).has_value());
    CHECK(std::chrono::steady_clock::now() - gone < 1s);
}

TEST_CASE("removing a dialed connection hands it back, and the dialer dials again") {
    mesh::Tcp tcp;
    TcpMesh near, far;
    auto listener = tcp.listen("tcp://127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    far.accept_from(std::move(listener));
    auto dialer = near.dial(tcp, endpoint, "peer", waits(50ms, 200ms));
    REQUIRE(next_of(near, Kind::dialed).has_value());
    auto taken = near.remove("peer");
    REQUIRE(taken.is_open());  // still usable on its own
    REQUIRE(!taken.send(mesh::to_payload("by hand")));
    CHECK(receives(far, "by hand"));
    // The dialer saw its connection leave: it connects again under the same id.
    REQUIRE(next_of(near, Kind::dialed).has_value());
    REQUIRE(near.send("peer", "dialed again").ok());
    CHECK(receives(far, "dialed again"));
}

} // TEST_SUITE
