// Peers that begin a frame and never finish it, and TCP keepalive settings.
#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#include "support/raw_peer.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

using namespace std::chrono_literals;
using mesh_test::Bytes;
using mesh_test::Role;
using TcpMesh = mesh::Mesh<mesh::Tcp>;

namespace {

mesh::Tcp tcp_with_frame_timeout(std::chrono::milliseconds timeout) {
    mesh::TcpOptions options;
    options.frame_timeout = timeout;
    return mesh::Tcp(options);
}

// Sends a header announcing 1000 bytes and 10 of them, then one more byte every
// 100 ms (the wait for the mesh's event paces it) until the mesh reports the
// connection or `limit` passes. Returns the event, if one came.
std::optional<mesh::ConnectionEvent> trickle(TcpMesh& m, mesh_test::RawSocket& raw, std::chrono::milliseconds limit) {
    Bytes partial = mesh_test::raw_header(1000);
    partial.resize(partial.size() + 10, 0x5A);
    REQUIRE(raw.write_all(partial));
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (auto event = mesh_test::next_event(m, 100ms)) return event;
        if (!raw.write_all(Bytes{0x5A})) break;  // closed by the mesh meanwhile
    }
    return mesh_test::next_event(m, 1s);
}

struct SmallIncoming : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 4;
};

} // namespace

TEST_SUITE("liveness") {

TEST_CASE("a peer that trickles a frame is closed with frame_timeout, while a healthy one keeps going") {
    auto tcp = tcp_with_frame_timeout(300ms);
    TcpMesh m;
    mesh_test::EchoPeer<TcpMesh> healthy(m, tcp);
    REQUIRE(healthy.probe(20) == 20);
    for (const Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        m.add(std::move(link.connection), "trickles");
        REQUIRE(link.raw.write_all(mesh_test::raw_frame(Bytes{'o', 'k'})));  // whole frames are fine
        mesh::Envelope envelope;
        REQUIRE(!m.recv_timeout(envelope, 10s));
        CHECK(envelope.id == "trickles");

        const auto started = std::chrono::steady_clock::now();
        const auto event = trickle(m, link.raw, 10s);
        const auto took = std::chrono::steady_clock::now() - started;
        REQUIRE(event.has_value());
        CHECK(event->id == "trickles");
        CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK(event->reason == mesh::errc::frame_timeout);
        // The timeout, plus at most the second between two checks (and a margin).
        CHECK(took >= 300ms);
        CHECK(took < 3s);
        CHECK(link.raw.wait_closed(5s));
        const auto late = m.send("trickles", mesh::to_payload("late"));
        CHECK(late.error == mesh::errc::disconnected);
        CHECK(late.reason == mesh::errc::frame_timeout);
        CHECK(healthy.probe(50) == 50);
        (void)m.remove("trickles");
    }
    CHECK(healthy.strays.empty());
}

TEST_CASE("a large frame that arrives steadily within the frame timeout is delivered") {
    auto tcp = tcp_with_frame_timeout(1500ms);
    TcpMesh m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);
    m.add(std::move(link.connection), "slow");
    // 64 KiB in 16 pieces over about 800 ms: the frame is unfinished across sweeps.
    const Bytes body(64 * 1024, 0x42);
    const Bytes frame = mesh_test::raw_frame(body);
    const std::size_t piece = frame.size() / 16 + 1;
    for (std::size_t at = 0; at < frame.size(); at += piece) {
        const Bytes part(frame.begin() + static_cast<std::ptrdiff_t>(at),
                         frame.begin() + static_cast<std::ptrdiff_t>(std::min(frame.size(), at + piece)));
        REQUIRE(link.raw.write_all(part));
        CHECK(mesh_test::next_event(m, 50ms) == std::nullopt);  // paces the pieces; nothing ends
    }
    mesh::Envelope envelope;
    REQUIRE(!m.recv_timeout(envelope, 10s));
    CHECK(envelope.payload.size() == body.size());
    CHECK(mesh_test::next_event(m, 300ms) == std::nullopt);
}

TEST_CASE("a frame the mesh is not reading, its incoming queue being full, is not timed") {
    auto tcp = tcp_with_frame_timeout(300ms);
    mesh::Mesh<mesh::Tcp, SmallIncoming> m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);
    m.add(std::move(link.connection), "busy");
    // More whole frames than the queue holds, nobody receiving, then half a frame.
    Bytes stream;
    for (int i = 0; i < 10; ++i) {
        const Bytes frame = mesh_test::raw_frame(Bytes{'f', static_cast<std::uint8_t>('0' + i)});
        stream.insert(stream.end(), frame.begin(), frame.end());
    }
    Bytes partial = mesh_test::raw_header(100);
    partial.resize(partial.size() + 50, 0x5A);
    stream.insert(stream.end(), partial.begin(), partial.end());
    REQUIRE(link.raw.write_all(stream));
    // Past the timeout and a sweep or two: reading paused at a frame's end, so the
    // unfinished frame waits unread and is not the peer's delay.
    mesh::ConnectionEvent event;
    CHECK(m.next_event(event, 2500ms) == mesh::errc::timeout);
    // The receiver takes everything; the rest of the frame completes it.
    REQUIRE(link.raw.write_all(Bytes(50, 0x5A)));
    mesh::Envelope envelope;
    for (int i = 0; i < 10; ++i) {
        REQUIRE(!m.recv_timeout(envelope, 10s));
        CHECK(envelope.payload.size() == 2);
    }
    REQUIRE(!m.recv_timeout(envelope, 10s));
    CHECK(envelope.payload.size() == 100);
    CHECK(m.next_event(event, 100ms) == mesh::errc::timeout);
}

TEST_CASE("frame_timeout 0 leaves an unfinished frame alone") {
    auto tcp = tcp_with_frame_timeout(0ms);
    TcpMesh m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);
    m.add(std::move(link.connection), "partial");
    Bytes partial = mesh_test::raw_header(1000);
    partial.resize(partial.size() + 10, 0x5A);
    REQUIRE(link.raw.write_all(partial));
    // Past a sweep or two: still connected, and the rest of the frame completes it.
    CHECK(mesh_test::next_event(m, 2500ms) == std::nullopt);
    REQUIRE(link.raw.write_all(Bytes(990, 0x5A)));
    mesh::Envelope envelope;
    REQUIRE(!m.recv_timeout(envelope, 10s));
    CHECK(envelope.payload.size() == 1000);
}

TEST_CASE("read_idle_timeout: a silent connection is closed with idle_timeout, one that hears from its peer is not") {
    mesh::TcpOptions options;
    options.read_idle_timeout = 600ms;
    mesh::Tcp tcp(options);
    TcpMesh m;
    auto silent = mesh_test::raw_link(tcp, Role::accepted);
    auto chatty = mesh_test::raw_link(tcp, Role::dialed);
    m.add(std::move(silent.connection), "silent");
    m.add(std::move(chatty.connection), "chatty");
    const auto started = std::chrono::steady_clock::now();
    // The chatty peer sends a frame every 100 ms (paced by the wait for an event).
    std::optional<mesh::ConnectionEvent> event;
    while (!event && std::chrono::steady_clock::now() - started < 10s) {
        REQUIRE(chatty.raw.write_all(mesh_test::raw_frame(Bytes{'h', 'i'})));
        event = mesh_test::next_event(m, 100ms);
    }
    const auto took = std::chrono::steady_clock::now() - started;
    REQUIRE(event.has_value());
    CHECK(event->id == "silent");
    CHECK(event->reason == mesh::errc::idle_timeout);
    CHECK(took >= 600ms);
    CHECK(took < 3s);
    // The chatty one lives on past more sweeps.
    for (int i = 0; i < 15; ++i) {
        REQUIRE(chatty.raw.write_all(mesh_test::raw_frame(Bytes{'h', 'i'})));
        CHECK(mesh_test::next_event(m, 100ms) == std::nullopt);
    }
    CHECK(m.stats("chatty").messages_in > 15);
}

TEST_CASE("write_stall_timeout: a peer that stops reading is closed with write_stalled, and what it held is counted") {
    mesh::TcpOptions options;
    options.write_stall_timeout = 500ms;
    mesh::Tcp tcp(options);
    TcpMesh m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);  // never reads
    m.add(std::move(link.connection), "deaf");
    const std::string chunk(16 * 1024, 'd');
    std::uint64_t accepted = 0;
    const auto until = std::chrono::steady_clock::now() + 20s;
    // Fill the socket buffers and the outgoing queue.
    for (;;) {
        const auto result = m.send("deaf", chunk);
        if (result.ok()) {
            ++accepted;
            continue;
        }
        REQUIRE(result.error == mesh::errc::queue_full);
        if (mesh_test::next_event(m, 10ms)) FAIL("closed before the queue filled");
        if (m.stats("deaf").queue_depth >= 1000 || std::chrono::steady_clock::now() > until) break;
    }
    const auto event = mesh_test::next_event(m, 5s);
    REQUIRE(event.has_value());
    CHECK(event->id == "deaf");
    CHECK(event->reason == mesh::errc::write_stalled);
    CHECK(event->discarded > 0);
    const auto stats = m.stats("deaf");
    CHECK(stats.messages_out + stats.discarded == accepted);
    CHECK(m.send("deaf", chunk).reason == mesh::errc::write_stalled);
}

TEST_CASE("TCP keepalive settings are applied to dialled and accepted tcp:// connections") {
    mesh::TcpOptions options;
    options.keepalive.enabled = true;
    options.keepalive.idle = 7s;
    options.keepalive.interval = 3s;
    options.keepalive.count = 4;
    mesh::Tcp with(options), without;
    const auto read = [](int fd, int level, int name) {
        int value = -1;
        socklen_t length = sizeof value;
        REQUIRE(::getsockopt(fd, level, name, &value, &length) == 0);
        return value;
    };
    for (mesh::Tcp* tcp : {&with, &without}) {
        auto pair = mesh_test::tcp_pair(*tcp);
        for (auto* connection : {&pair.client, &pair.server}) {
            const int fd = connection->socket().native_handle();
            if (tcp == &with) {
                CHECK(read(fd, SOL_SOCKET, SO_KEEPALIVE) != 0);
                CHECK(read(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 7);
                CHECK(read(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 3);
                CHECK(read(fd, IPPROTO_TCP, TCP_KEEPCNT) == 4);
            } else {
                CHECK(read(fd, SOL_SOCKET, SO_KEEPALIVE) == 0);  // off by default
            }
        }
    }
}

} // TEST_SUITE
