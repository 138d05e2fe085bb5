#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/process_stats.hpp"
#include "support/raw_peer.hpp"
#include "support/samples.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using mesh_test::Bytes;
using mesh_test::hex;
using mesh_test::Role;

using mesh_test::Caps1;
using mesh_test::Caps16;
using mesh_test::Incoming2;
using mesh_test::Incoming64;
using mesh_test::hello;
using mesh_test::port_of;
using mesh_test::send_waiting;
using mesh_test::world;
namespace {

using Clock = std::chrono::steady_clock;
using TcpMesh = mesh::Mesh<mesh::Tcp>;

struct Max64K : mesh::DefaultConfig {
    static constexpr std::size_t max_message_size = 64 * 1024;
};
// A mesh holding a healthy echoed connection, to which misbehaving raw peers are
// attached one by one; the healthy connection must keep working throughout.
template <class Config = mesh::DefaultConfig>
struct BadPeerBench {
    using Mesh = mesh::Mesh<mesh::Tcp, Config>;

    mesh::Tcp tcp;
    Mesh m;
    mesh_test::EchoPeer<Mesh> healthy{m, tcp};
    int attached = 0;

    struct Bad {
        std::string id;
        mesh_test::RawSocket raw;
    };

    Bad attach(Role role) {
        auto link = mesh_test::raw_link(tcp, role);
        Bad bad;
        bad.id = std::string("bad-") + mesh_test::role_name(role) + "-" + std::to_string(attached++);
        bad.raw = std::move(link.raw);
        m.add(std::move(link.connection), bad.id);
        return bad;
    }

    // Exactly one disconnected event, for `bad`, with `reason`; then it is removed.
    void expect_disconnect(Bad& bad, std::error_code reason) {
        auto event = mesh_test::next_event(m, 5s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK(event->id == bad.id);
        CHECK(event->reason == reason);
        CHECK(bad.raw.wait_closed(5s));  // only its connection closed
        std::error_code ec;
        (void)m.remove(bad.id, ec);
        CHECK(!ec);
        mesh::ConnectionEvent second;
        CHECK(m.try_event(second) == mesh::errc::timeout);
    }

    // No envelope from any bad peer is waiting.
    void expect_nothing_delivered() {
        mesh::Envelope e;
        CHECK(m.try_recv(e) == mesh::errc::would_block);
    }

    void probe() {
        CHECK(healthy.probe(100) == 100);
        CHECK(healthy.strays.empty());
    }
};

} // namespace

TEST_SUITE("tcp mesh") {

// ---- section 5.1 over TCP ----

TEST_CASE("5.1 #2 two meshes in two threads: the server receives \"hello\" under its own id") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    std::error_code client_ec;
    mesh::SendResult client_send;
    mesh::ShutdownReport client_report{1, 1};
    std::thread client([&] {
        mesh::Mesh<mesh::Tcp, Caps1> client_mesh;
        auto connection = tcp.connect(endpoint, client_ec);
        if (client_ec) return;
        client_mesh.add(std::move(connection), "client");
        client_send = client_mesh.send("client", mesh::Payload(hello));
        client_report = client_mesh.shutdown(10s);  // flushes "hello" first
    });
    mesh::Mesh<mesh::Tcp, Caps1> server_mesh;
    std::error_code accept_ec;
    auto accepted = listener.accept(accept_ec);
    std::error_code recv_ec = mesh::errc::not_connected;
    mesh::Envelope envelope;
    if (!accept_ec) {
        server_mesh.add(std::move(accepted), "server");
        recv_ec = server_mesh.recv_timeout(envelope, 10s);
    }
    client.join();
    REQUIRE(!accept_ec);
    REQUIRE(recv_ec == std::error_code());
    CHECK(envelope == mesh::Envelope("server", hello));
    CHECK(!client_ec);
    CHECK(client_send.ok());
    CHECK(client_report.discarded_outgoing == 0);
    CHECK(client_report.discarded_incoming == 0);
    server_mesh.shutdown();
    CHECK(server_mesh.is_shut_down());
}

TEST_CASE("5.1 #4 8 connections each way added and removed from two threads") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    mesh::Mesh<mesh::Tcp, Caps1> m;
    std::atomic<int> client_failures{0};
    std::thread connector([&] {
        for (int i = 0; i < 8; ++i) {
            std::error_code ec;
            auto connection = tcp.connect(endpoint, ec);
            if (!ec) m.add(std::move(connection), "thread_" + std::to_string(i), ec);
            if (ec) ++client_failures;
        }
    });
    int accept_failures = 0;
    for (int i = 0; i < 8 && client_failures == 0; ++i) {
        std::error_code ec;
        auto accepted = listener.accept(ec);
        if (!ec) m.add(std::move(accepted), "main_" + std::to_string(i), ec);
        if (ec) ++accept_failures;
    }
    connector.join();
    REQUIRE(client_failures == 0);
    REQUIRE(accept_failures == 0);
    CHECK(m.stats().connections == 16);
    for (int i = 0; i < 8; ++i) {
        std::error_code ec;
        (void)m.remove("thread_" + std::to_string(i), ec);
        CHECK(!ec);
        (void)m.remove("main_" + std::to_string(i), ec);
        CHECK(!ec);
    }
    CHECK(m.stats().connections == 0);
    m.shutdown();
    CHECK(m.is_shut_down());
}

TEST_CASE("5.1 #6 16 connections with both ends in one mesh: hello and world") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    mesh::Mesh<mesh::Tcp, Caps16> m;
    std::atomic<bool> added{false};
    std::set<std::string> hello_ids;
    int not_hello = 0, send_failures = 0;
    std::error_code connect_ec;
    std::thread other([&] {
        for (int i = 0; i < 16 && !connect_ec; ++i) {
            auto connection = tcp.connect(endpoint, connect_ec);
            if (!connect_ec) m.add(std::move(connection), "thread_" + std::to_string(i));
        }
        added = true;
        if (connect_ec) return;
        for (int i = 0; i < 16; ++i) {
            mesh::Envelope envelope;
            if (m.recv_timeout(envelope, 10s)) break;
            if (envelope.payload != hello) ++not_hello;
            hello_ids.insert(envelope.id);
        }
        for (const auto& id : hello_ids)
            if (!m.send(id, mesh::Payload(world)).ok()) ++send_failures;
    });
    int accept_failures = 0;
    for (int i = 0; i < 16; ++i) {
        std::error_code ec;
        auto accepted = listener.accept(ec);
        if (!ec) m.add(std::move(accepted), "main_" + std::to_string(i), ec);
        if (ec) ++accept_failures;
        if (ec) break;
    }
    const bool all_added = mesh_test::wait_until([&] { return added.load(); }, 10s);
    // Sent only when every id exists, so that the other thread's receives can end.
    if (all_added && accept_failures == 0 && !connect_ec)
        for (int i = 0; i < 16; ++i) CHECK(m.send("main_" + std::to_string(i), mesh::Payload(hello)).ok());
    else
        m.shutdown();  // wakes the other thread
    other.join();
    REQUIRE(all_added);
    REQUIRE(accept_failures == 0);
    REQUIRE(!connect_ec);
    std::set<std::string> expected_thread_ids;
    for (int i = 0; i < 16; ++i) expected_thread_ids.insert("thread_" + std::to_string(i));
    CHECK(hello_ids == expected_thread_ids);
    CHECK(not_hello == 0);
    CHECK(send_failures == 0);

    std::set<std::string> world_ids;
    for (int i = 0; i < 16; ++i) {
        mesh::Envelope envelope;
        REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope.payload == world);
        world_ids.insert(envelope.id);
    }
    CHECK(world_ids.size() == 16);
    CHECK(world_ids.count("main_0") == 1);
    CHECK(world_ids.count("main_15") == 1);
    mesh::Envelope extra;
    CHECK(m.try_recv(extra) == mesh::errc::would_block);  // no shutdown marker, nothing else
    m.shutdown();
    CHECK(m.is_shut_down());
}

TEST_CASE("5.1 #8 shutdown: after an exchange, recv returns shut_down") {
    mesh::Tcp tcp;
    auto pair = mesh_test::tcp_pair(tcp);
    mesh::Mesh<mesh::Tcp, Caps1> m;
    m.add(std::move(pair.server), "main");
    m.add(std::move(pair.client), "thread_1");
    REQUIRE(m.send("main", mesh::Payload(hello)).ok());
    mesh::Envelope at_thread;
    std::error_code thread_recv;
    mesh::SendResult thread_send;
    std::thread thread([&] {
        thread_recv = m.recv_timeout(at_thread, 10s);
        thread_send = m.send("thread_1", mesh::Payload(world));
    });
    thread.join();
    CHECK(!thread_recv);
    CHECK(at_thread == mesh::Envelope("thread_1", hello));
    CHECK(thread_send.ok());
    mesh::Envelope at_main;
    REQUIRE(m.recv_timeout(at_main, 10s) == std::error_code());
    CHECK(at_main == mesh::Envelope("main", world));

    // A receiver blocked in recv is woken by the shutdown.
    std::error_code blocked_result;
    std::thread blocked([&] {
        mesh::Envelope e;
        blocked_result = m.recv(e);
    });
    m.shutdown();
    blocked.join();
    CHECK(blocked_result == mesh::errc::shut_down);
    mesh::Envelope after;
    CHECK(m.recv(after) == mesh::errc::shut_down);
}

TEST_CASE("a message sent right after add is delivered, many times over") {
    mesh::Tcp tcp;
    TcpMesh m;
    for (int i = 0; i < 100; ++i) {
        CAPTURE(i);
        auto pair = mesh_test::tcp_pair(tcp);
        const std::string id = "c" + std::to_string(i);
        m.add(std::move(pair.server), id);
        REQUIRE(m.send(id, mesh_test::numbered(static_cast<std::uint32_t>(i))).ok());
        mesh::Payload got;
        REQUIRE(pair.client.recv_for(got, 10s) == std::error_code());
        CHECK(mesh_test::number_of(got) == static_cast<std::uint32_t>(i));
        (void)m.remove(id);
    }
}

// ---- accepting on the reactor ----

TEST_CASE("accept_from: a server mesh accepts 20 clients with no accept thread - ids are remote endpoints") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));

    std::vector<mesh::TcpConnection> clients;
    std::set<std::string> client_names;
    for (int i = 0; i < 20; ++i) {
        std::error_code ec;
        clients.push_back(tcp.connect(endpoint, ec));  // the reactor answers the handshake
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(clients.back().remote_endpoint() == endpoint);
        client_names.insert(clients.back().local_endpoint());
    }
    std::set<std::string> connected;
    for (int i = 0; i < 20; ++i) {
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
        CHECK_FALSE(event->reason);
        connected.insert(event->id);
    }
    CHECK(connected == client_names);
    CHECK(server.stats().connections == 20);

    for (int i = 0; i < 20; ++i)
        REQUIRE(clients[i].send(mesh::to_payload("ping " + std::to_string(i))) == std::error_code());
    for (int i = 0; i < 20; ++i) {
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        const int from = std::stoi(mesh_test::text(envelope.payload).substr(5));
        REQUIRE(from >= 0);
        REQUIRE(from < 20);
        CHECK(envelope.id == clients[from].local_endpoint());
    }
    for (int i = 0; i < 20; ++i)
        CHECK(server.send(clients[i].local_endpoint(), mesh::to_payload("pong " + std::to_string(i))).ok());
    for (int i = 0; i < 20; ++i) {
        mesh::Payload got;
        REQUIRE(clients[i].recv_for(got, 10s) == std::error_code());
        CHECK(mesh_test::text(got) == "pong " + std::to_string(i));
    }
    mesh::ConnectionEvent none;
    CHECK(server.try_event(none) == mesh::errc::timeout);
}

TEST_CASE("accept_from with an id rule - a rule that repeats an id refuses the newcomer with an event") {
    mesh::Tcp tcp;
    SUBCASE("a custom rule names every connection") {
        TcpMesh server;
        auto listener = tcp.listen("127.0.0.1:0");
        const std::string endpoint = listener.endpoint();
        server.accept_from(std::move(listener),
                           [](const mesh::TcpConnection& c) { return "peer:" + port_of(c.remote_endpoint()); });
        std::vector<mesh::TcpConnection> clients;
        std::set<std::string> expected;
        for (int i = 0; i < 5; ++i) {
            clients.push_back(tcp.connect(endpoint));
            expected.insert("peer:" + port_of(clients.back().local_endpoint()));
        }
        std::set<std::string> connected;
        for (int i = 0; i < 5; ++i) {
            auto event = mesh_test::next_event(server, 10s);
            REQUIRE(event.has_value());
            CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
            connected.insert(event->id);
        }
        CHECK(connected == expected);
        for (auto& c : clients) {
            const std::string id = "peer:" + port_of(c.local_endpoint());
            REQUIRE(server.send(id, mesh::to_payload(id)).ok());
            mesh::Payload got;
            REQUIRE(c.recv_for(got, 10s) == std::error_code());
            CHECK(mesh_test::text(got) == id);
            REQUIRE(c.send(mesh::to_payload("back")) == std::error_code());
            mesh::Envelope envelope;
            REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
            CHECK(envelope == mesh::Envelope(id, mesh::to_payload("back")));
        }
    }
    SUBCASE("a duplicate id") {
        TcpMesh server;
        auto listener = tcp.listen("127.0.0.1:0");
        const std::string endpoint = listener.endpoint();
        server.accept_from(std::move(listener), [](const mesh::TcpConnection&) { return std::string("same"); });
        auto first = tcp.connect(endpoint);
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->id == "same");
        auto second = tcp.connect(endpoint);  // its handshake completes, then it is closed
        mesh::Payload got;
        const auto ec = second.recv_for(got, 10s);
        CHECK((ec == mesh::errc::end_of_stream || ec == asio::error::connection_reset));
        auto refused = mesh_test::next_event(server, 10s);
        REQUIRE(refused.has_value());
        CHECK(refused->kind == mesh::ConnectionEvent::Kind::refused);
        CHECK(refused->id == "same");
        CHECK(refused->reason == mesh::errc::duplicate_id);
        CHECK(server.stats().refused == 1);
        mesh::ConnectionEvent none;
        CHECK(server.next_event(none, 100ms) == mesh::errc::timeout);
        // The first one still works.
        REQUIRE(first.send(hello) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope == mesh::Envelope("same", hello));
    }
}

TEST_CASE("accept_from: silent or half-speaking clients hold up no other client, and time out") {
    mesh::TcpOptions options;
    options.handshake_timeout = 1000ms;
    mesh::Tcp server_tcp(options);
    mesh::Tcp client_tcp;
    TcpMesh server;
    auto listener = server_tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));

    const auto start = Clock::now();
    auto silent = mesh_test::raw_connect(endpoint);
    auto half = mesh_test::raw_connect(endpoint);
    REQUIRE(silent.valid());
    REQUIRE(half.valid());
    REQUIRE(half.write_all(Bytes{0, 1, 0}));

    std::vector<mesh::TcpConnection> good;
    for (int i = 0; i < 5; ++i) {
        std::error_code ec;
        good.push_back(client_tcp.connect(endpoint, ec));
        REQUIRE_MESSAGE(!ec, ec.message());
    }
    for (int i = 0; i < 5; ++i) {
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
    }
    const bool before_deadline = Clock::now() - start < 900ms;
    if (before_deadline) {
        // The stalled handshakes are still pending while the others got through.
        CHECK(silent.quiet_for(0ms));
        CHECK(half.quiet_for(0ms));
    }
    for (auto& c : good) {
        REQUIRE(c.send(hello) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope.id == c.local_endpoint());
    }
    // Then the deadline closes the stalled ones, without a connected event.
    CHECK(silent.wait_closed(10s));
    CHECK(half.wait_closed(10s));
    CHECK(Clock::now() - start >= 900ms);
    mesh::ConnectionEvent none;
    CHECK(server.try_event(none) == mesh::errc::timeout);
    CHECK(server.stats().connections == 5);
}

TEST_CASE("max_pending_handshakes is 256 unless set") {
    CHECK(mesh::StreamOptions().max_pending_handshakes == 256);
}

TEST_CASE("accept_from: max_pending_handshakes closes newcomers at once while the limit is reached - counted") {
    mesh::TcpOptions options;
    options.handshake_timeout = 1000ms;
    options.max_pending_handshakes = 3;
    mesh::Tcp server_tcp(options);
    TcpMesh server;
    auto listener = server_tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    const auto stats = listener.stats();
    server.accept_from(std::move(listener));

    std::vector<mesh_test::RawSocket> silent;
    for (int i = 0; i < 3; ++i) silent.push_back(mesh_test::raw_connect(endpoint));
    REQUIRE(mesh_test::wait_until([&] { return stats->handshaking.load() == 3; }, 10s));
    auto newcomer = mesh_test::raw_connect(endpoint);
    CHECK(newcomer.wait_closed(900ms));  // well before the others' deadline
    CHECK(stats->over_limit.load() == 1);
    CHECK(stats->accepted.load() == 0);
    for (auto& s : silent) CHECK(s.quiet_for(0ms));  // the three are still waiting for their deadline

    // At the deadline they are closed and counted; then a real client gets in.
    for (auto& s : silent) CHECK(s.wait_closed(10s));
    REQUIRE(mesh_test::wait_until([&] { return stats->handshakes_failed.load() == 3; }, 10s));
    CHECK(stats->handshaking.load() == 0);
    mesh::Tcp client_tcp;
    std::error_code ec;
    auto client = client_tcp.connect(endpoint, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    auto event = mesh_test::next_event(server, 10s);
    REQUIRE(event.has_value());
    CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
    CHECK(stats->accepted.load() == 1);
}

TEST_CASE("accept_from: a client offering no usable version gets 00 00 and the close - others carry on") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    struct Range {
        std::uint16_t min, max;
    };
    for (Range range : {Range{3, 5}, Range{2, 9}, Range{0, 0}, Range{2, 1}}) {
        CAPTURE(range.min);
        CAPTURE(range.max);
        auto peer = mesh_test::raw_connect(endpoint);
        REQUIRE(peer.valid());
        const auto start = Clock::now();
        CHECK(hex(peer.send_hello(range.min, range.max)) == "00 00");
        CHECK(peer.wait_closed(5s));
        CHECK(Clock::now() - start < 1s);
    }
    // A raw client speaking correctly, with a first frame right behind its hello.
    auto peer = mesh_test::raw_connect(endpoint);
    Bytes bytes = mesh_test::raw_hello(1, 1);
    mesh_test::append(bytes, mesh_test::raw_frame(hello));
    REQUIRE(peer.write_all(bytes));
    CHECK(hex(peer.read_exact(2)) == "00 01");
    auto event = mesh_test::next_event(server, 10s);
    REQUIRE(event.has_value());
    CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
    mesh::Envelope envelope;
    REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
    CHECK(envelope == mesh::Envelope(event->id, hello));
    mesh::ConnectionEvent none;
    CHECK(server.try_event(none) == mesh::errc::timeout);  // no event for the refused ones
}

TEST_CASE("accept_from after shutdown is shut_down - shutdown closes the listener") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    auto client = tcp.connect(endpoint);
    REQUIRE(mesh_test::next_event(server, 10s).has_value());
    server.shutdown();
    mesh::Payload got;
    CHECK(client.recv_for(got, 10s) == mesh::errc::end_of_stream);
    std::error_code ec;
    tcp.connect(endpoint, ec);
    CHECK(ec == mesh::errc::connection_refused);
    auto another = tcp.listen("127.0.0.1:0");
    server.accept_from(std::move(another), [](const mesh::TcpConnection&) { return std::string("x"); }, ec);
    CHECK(ec == mesh::errc::shut_down);
}

TEST_CASE("accept_from: an accepted connection removed from the mesh works on its own") {
    mesh::Tcp tcp;
    mesh::TcpConnection client;
    std::string id;
    mesh::TcpConnection back;
    {
        TcpMesh server;
        auto listener = tcp.listen("127.0.0.1:0");
        const std::string endpoint = listener.endpoint();
        server.accept_from(std::move(listener));
        client = tcp.connect(endpoint);
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        id = event->id;
        REQUIRE(client.send(hello) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        back = server.remove(id);
    }  // the mesh (and its reactor) are gone
    REQUIRE(back.is_open());
    CHECK(back.remote_endpoint() == client.local_endpoint());
    REQUIRE(back.send(world) == std::error_code());
    mesh::Payload got;
    REQUIRE(client.recv_for(got, 10s) == std::error_code());
    CHECK(got == world);
    REQUIRE(client.send(hello) == std::error_code());
    REQUIRE(back.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);
}

TEST_CASE("shutdown closes the handshakes accept_from still has pending") {
    mesh::Tcp tcp;  // default handshake deadline: 10 s
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    auto silent = mesh_test::raw_connect(endpoint);
    REQUIRE(silent.valid());
    // A real client after it proves the reactor has been accepting meanwhile.
    auto client = tcp.connect(endpoint);
    REQUIRE(mesh_test::next_event(server, 10s).has_value());
    const auto start = Clock::now();
    server.shutdown();
    CHECK(silent.wait_closed(5s));
    CHECK(Clock::now() - start < 5s);
}

TEST_CASE("accept_from a listener that is not listening does no harm") {
    mesh::Tcp tcp;
    TcpMesh m;
    SUBCASE("a listener from a failed listen") {
        std::error_code ec;
        auto failed = tcp.listen("tls://127.0.0.1:0", ec);
        REQUIRE(ec);
        m.accept_from(std::move(failed));
    }
    SUBCASE("a closed listener") {
        auto closed = tcp.listen("127.0.0.1:0");
        closed.close();
        m.accept_from(std::move(closed));
    }
    // The mesh goes on working.
    auto pair = mesh_test::tcp_pair(tcp);
    m.add(std::move(pair.server), "server");
    REQUIRE(pair.client.send(hello) == std::error_code());
    mesh::Envelope envelope;
    REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
    CHECK(envelope == mesh::Envelope("server", hello));
    mesh::ConnectionEvent none;
    CHECK(m.try_event(none) == mesh::errc::timeout);
}

TEST_CASE("add refuses a connection that is not connected") {
    mesh::Tcp tcp;
    TcpMesh m;
    std::error_code ec;
    auto failed = tcp.connect("tcp://127.0.0.1:" + std::to_string(mesh_test::closed_port()), ec);
    REQUIRE(ec);
    m.add(std::move(failed), "nothing", ec);
    CHECK(ec == mesh::errc::not_connected);
    auto pair = mesh_test::tcp_pair(tcp);
    pair.server.disconnect();
    m.add(std::move(pair.server), "closed", ec);
    CHECK(ec == mesh::errc::not_connected);
    CHECK(m.stats().connections == 0);
}

TEST_CASE("a frame the mesh had half read is completed by the removed connection on its own") {
    mesh::Tcp tcp;
    TcpMesh m;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        const int our_fd = link.connection.socket().native_handle();
        m.add(std::move(link.connection), "peer");
        for (std::size_t size : {std::size_t{40}, std::size_t{70000}}) {
            CAPTURE(size);
            const mesh::Payload payload(size, 0x33);
            const Bytes frame = mesh_test::raw_frame(payload);
            for (std::size_t cut : {std::size_t{3}, std::size_t{7}, std::size_t{20}}) {
                CAPTURE(cut);
                REQUIRE(link.raw.write_all(frame.data(), cut));
                REQUIRE(mesh_test::wait_until([&] { return mesh_test::unread_bytes(our_fd) == 0; }, 10s));
                auto back = m.remove("peer");
                REQUIRE(link.raw.write_all(frame.data() + cut, frame.size() - cut));
                mesh::Payload got;
                REQUIRE(back.recv_for(got, 10s) == std::error_code());
                CHECK(got == payload);
                m.add(std::move(back), "peer");
            }
        }
        (void)m.remove("peer");
    }
}

TEST_CASE("an accepted peer that closes gives exactly one disconnected event, end_of_stream, and is forgotten") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    auto client = tcp.connect(endpoint);
    const std::string id = client.local_endpoint();
    auto connected = mesh_test::next_event(server, 10s);
    REQUIRE(connected.has_value());
    CHECK(connected->id == id);

    REQUIRE(client.send(mesh::to_payload("last words")) == std::error_code());
    client.disconnect();
    auto event = mesh_test::next_event(server, 10s);
    REQUIRE(event.has_value());
    CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
    CHECK(event->id == id);
    CHECK(event->reason == mesh::errc::end_of_stream);
    CHECK(event->discarded == 0);
    mesh::ConnectionEvent none;
    CHECK(server.next_event(none, 100ms) == mesh::errc::timeout);  // exactly one
    // Its message arrived before the event.
    mesh::Envelope envelope;
    REQUIRE(server.try_recv(envelope) == std::error_code());
    CHECK(envelope == mesh::Envelope(id, mesh::to_payload("last words")));
    CHECK(server.stats().protocol_errors == 0);

    // Reaped: the id is free, and its counters live on in the totals.
    CHECK(server.send(id, mesh::Payload(hello)).error == mesh::errc::not_found);
    std::error_code ec;
    (void)server.remove(id, ec);
    CHECK(ec == mesh::errc::not_found);
    CHECK(server.stats().connections == 0);
    CHECK(server.stats().messages_in == 1);
}

TEST_CASE("a peer that resets gives one disconnected event with the reset as its reason") {
    mesh::Tcp tcp;
    TcpMesh m;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        const std::string id = mesh_test::role_name(role);
        m.add(std::move(link.connection), id);
        link.raw.reset();
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->id == id);
        CHECK(event->reason == asio::error::connection_reset);
        mesh::ConnectionEvent none;
        CHECK(m.next_event(none, 50ms) == mesh::errc::timeout);
        CHECK(!m.remove(id).is_open());
    }
}

// ---- A10: the same stream however it is cut ----

TEST_CASE("A10 the same 10,000-message stream arrives identically however the peer cuts it") {
    static const auto stream = mesh_test::make_stream();
    REQUIRE(stream.messages.size() == 10000);
    std::size_t chunk = 0;     // 0: random sizes
    std::uint32_t seed = 0;
    Role role = Role::accepted;
    SUBCASE("1 byte at a time") { chunk = 1; }
    SUBCASE("7 bytes at a time") { chunk = 7; role = Role::dialed; }
    SUBCASE("random chunks, accepted") { seed = 17; }
    SUBCASE("random chunks, dialed") { seed = 42; role = Role::dialed; }
    CAPTURE(chunk);
    CAPTURE(seed);
    CAPTURE(mesh_test::role_name(role));

    mesh::Tcp tcp;
    TcpMesh m;
    auto link = mesh_test::raw_link(tcp, role);
    m.add(std::move(link.connection), "peer");
    bool wrote = false;
    std::thread writer([&] {
        if (chunk != 0) {
            wrote = link.raw.write_chunked(stream.wire, chunk, 30s);
            return;
        }
        std::mt19937 random(seed);
        wrote = true;
        for (std::size_t at = 0; at < stream.wire.size() && wrote;) {
            const std::size_t n = std::min<std::size_t>(1 + random() % 3000, stream.wire.size() - at);
            wrote = link.raw.write_all(stream.wire.data() + at, n, 30s);
            at += n;
        }
    });
    std::size_t matched = 0, first_mismatch = stream.messages.size();
    for (std::size_t i = 0; i < stream.messages.size(); ++i) {
        mesh::Envelope envelope;
        if (m.recv_timeout(envelope, 10s)) break;
        if (envelope.id == "peer" && envelope.payload == stream.messages[i]) ++matched;
        else if (first_mismatch == stream.messages.size()) first_mismatch = i;
    }
    writer.join();
    CHECK(wrote);
    CHECK(first_mismatch == stream.messages.size());
    CHECK(matched == stream.messages.size());
    link.raw.close();
    auto event = mesh_test::next_event(m, 10s);
    REQUIRE(event.has_value());
    CHECK(event->reason == mesh::errc::end_of_stream);
    CHECK(m.stats().messages_in == stream.messages.size());
}

TEST_CASE("A10 frames split at every byte offset are delivered intact") {
    mesh::Tcp tcp;
    TcpMesh m;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        const int our_fd = link.connection.socket().native_handle();
        m.add(std::move(link.connection), "peer");
        // Writes `bytes` cut at `at`, letting the mesh read the first part on its own.
        auto write_split = [&](const Bytes& bytes, std::size_t at) {
            REQUIRE(link.raw.write_all(bytes.data(), at));
            REQUIRE(mesh_test::wait_until([&] { return mesh_test::unread_bytes(our_fd) == 0; }, 10s));
            REQUIRE(link.raw.write_all(bytes.data() + at, bytes.size() - at));
        };
        // A zero-length frame then a small one: every boundary inside and between them.
        const mesh::Payload small = mesh::to_payload("split me anywhere, forty bytes long....");
        Bytes two = mesh_test::raw_frame({});
        mesh_test::append(two, mesh_test::raw_frame(small));
        for (std::size_t at = 1; at < two.size(); ++at) {
            CAPTURE(at);
            write_split(two, at);
            mesh::Envelope envelope;
            REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
            CHECK(envelope == mesh::Envelope("peer", {}));
            REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
            CHECK(envelope == mesh::Envelope("peer", small));
        }
        // A frame larger than the read buffer, cut in its header and in its body.
        mesh::Payload large(70000);
        for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<std::uint8_t>(i * 31 + 7);
        const Bytes frame = mesh_test::raw_frame(large);
        for (std::size_t at : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 1000u, 65536u, 65543u, 69999u, 70006u}) {
            CAPTURE(at);
            write_split(frame, at);
            mesh::Envelope envelope;
            REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
            CHECK(envelope.id == "peer");
            CHECK(envelope.payload == large);
        }
        (void)m.remove("peer");
    }
}

// ---- what we write ----

TEST_CASE("a mesh writes the 10,000-message stream byte-exactly to a slow reader") {
    static const auto stream = mesh_test::make_stream();
    mesh::Tcp tcp;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        TcpMesh m;
        auto link = mesh_test::raw_link(tcp, role);
        m.add(std::move(link.connection), "raw");
        Bytes received;
        std::thread reader([&] {
            // Small reads keep the socket buffers full, so our writes are often partial.
            while (received.size() < stream.wire.size()) {
                auto piece = link.raw.read_exact(std::min<std::size_t>(777, stream.wire.size() - received.size()), 10s);
                if (piece.empty()) break;
                mesh_test::append(received, piece);
            }
        });
        std::size_t refused = 0;
        for (const auto& message : stream.messages)
            if (!send_waiting(m, "raw", message).ok()) ++refused;
        reader.join();
        CHECK(refused == 0);
        REQUIRE(received.size() == stream.wire.size());
        CHECK(received == stream.wire);
        CHECK(link.raw.quiet_for(20ms));
        REQUIRE(mesh_test::wait_until([&] { return m.stats("raw").messages_out == stream.messages.size(); }, 10s));
        std::uint64_t bytes = 0;
        for (const auto& message : stream.messages) bytes += message.size();
        CHECK(m.stats("raw").bytes_out == bytes);
    }
}

TEST_CASE("send of a payload above Config::max_message_size is refused with the envelope untouched") {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Max64K> m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);
    m.add(std::move(link.connection), "raw");
    mesh::Envelope big("raw", mesh::Payload(64 * 1024 + 1, 9));
    auto result = m.send(std::move(big));
    CHECK(result.error == mesh::errc::message_too_large);
    CHECK(big.payload.size() == 64 * 1024 + 1);
    CHECK(m.send("raw", mesh::Payload(64 * 1024, 3)).ok());
    CHECK(hex(link.raw.read_exact(7)) == "00 01 00 01 00 00 FE");
    CHECK(link.raw.read_exact(64 * 1024) == Bytes(64 * 1024, 3));
}

// Remove cancels a write in progress; the removed connection writes the rest of that
// batch before anything else, so the peer still sees whole frames.
TEST_CASE("a connection removed while a large write is in progress is not left mid-frame") {
    mesh::Tcp tcp;
    TcpMesh m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);
    link.connection.socket().set_option(asio::socket_base::send_buffer_size(8192));
    m.add(std::move(link.connection), "raw");
    const mesh::Payload big(4 * 1024 * 1024, 0x5A);
    REQUIRE(m.send("raw", mesh::Payload(big)).ok());
    // The peer reads nothing yet, so the write stalls part way.
    REQUIRE(mesh_test::wait_until([&] { return mesh_test::unread_bytes(link.raw.fd()) > 0; }, 10s));
    auto back = m.remove("raw");
    REQUIRE(back.is_open());
    std::error_code send_ec;
    std::thread sender([&] { send_ec = back.send(mesh::to_payload("after")); });
    // Whatever happened to the big frame, the peer must be able to find "after" as a frame.
    // Generous deadlines: with an 8 KiB send buffer and delayed ACKs, 4 MiB over
    // loopback can take a few seconds on a loaded machine.
    Bytes header = link.raw.read_exact(7, 20s);
    bool found_after = false;
    if (hex(header) == hex(mesh_test::raw_header(static_cast<std::uint32_t>(big.size())))) {
        auto body = link.raw.read_exact(big.size(), 20s);
        if (body == big) header = link.raw.read_exact(7, 20s);
    }
    if (hex(header) == hex(mesh_test::raw_header(5))) found_after = mesh_test::text(link.raw.read_exact(5, 20s)) == "after";
    link.raw.close();
    sender.join();
    CHECK(found_after);
}

TEST_CASE("messages a peer sent before closing are delivered even when our writes to it fail") {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Incoming2> m;  // full at once: the reactor stops reading
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        m.add(std::move(link.connection), "peer");
        Bytes frames;
        for (std::uint32_t i = 0; i < 50; ++i) mesh_test::append(frames, mesh_test::raw_frame(mesh_test::numbered(i)));
        REQUIRE(link.raw.write_all(frames));
        link.raw.close();
        REQUIRE(mesh_test::wait_until([&] { return m.stats("peer").messages_in >= 3; }, 10s));
        // Our writes now meet a closed peer: the first draws a reset, the next ones fail.
        mesh::SendResult last;
        for (int i = 0; i < 5; ++i) {
            last = m.send("peer", mesh::Payload(hello));
            if (!last.ok()) break;
            REQUIRE(mesh_test::wait_until([&] { return m.stats("peer").queue_depth == 0; }, 10s));
        }
        CHECK(last.error == mesh::errc::disconnected);
        std::vector<std::uint32_t> seen;
        mesh::Envelope envelope;
        while (seen.size() < 50 && !m.recv_timeout(envelope, 2s)) seen.push_back(mesh_test::number_of(envelope.payload));
        REQUIRE(seen.size() == 50);
        for (std::uint32_t i = 0; i < 50; ++i) CHECK(seen[i] == i);
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK((event->reason == mesh::errc::end_of_stream || event->reason == asio::error::connection_reset));
        mesh::ConnectionEvent none;
        CHECK(m.next_event(none, 50ms) == mesh::errc::timeout);
        (void)m.remove("peer");
    }
}

// ---- bad input on the wire (section 2 of the reliability notes) ----

TEST_CASE("A1 a truncated header then FIN: truncated_frame, no message, other connections unaffected") {
    BadPeerBench<> bench;
    const Bytes header = mesh_test::raw_header(5);
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        for (std::size_t k = 0; k <= 6; ++k) {
            CAPTURE(k);
            const auto errors_before = bench.m.stats().protocol_errors;
            auto bad = bench.attach(role);
            REQUIRE(bad.raw.write_all(header.data(), k));
            bad.raw.shutdown_write();
            const auto start = Clock::now();
            bench.expect_disconnect(bad, k == 0 ? mesh::make_error_code(mesh::errc::end_of_stream)
                                                : mesh::make_error_code(mesh::errc::truncated_frame));
            CHECK(Clock::now() - start < 1s);
            CHECK(bench.m.stats().protocol_errors == errors_before + (k == 0 ? 0 : 1));
            bench.expect_nothing_delivered();
        }
        bench.probe();
    }
    // A truncated body behaves the same way.
    auto bad = bench.attach(Role::accepted);
    Bytes cut = mesh_test::raw_header(100);
    cut.resize(7 + 50, 1);
    REQUIRE(bad.raw.write_all(cut));
    bad.raw.shutdown_write();
    bench.expect_disconnect(bad, mesh::errc::truncated_frame);
    bench.expect_nothing_delivered();
    bench.probe();
}

TEST_CASE("A3 bad checksum: every single-bit flip of a header, and wrong checksum bytes") {
    BadPeerBench<> bench;
    const Bytes good = mesh_test::raw_header(5);
    std::vector<Bytes> headers;
    for (std::size_t bit = 0; bit < 56; ++bit) {
        Bytes h = good;
        h[bit / 8] = static_cast<std::uint8_t>(h[bit / 8] ^ (1u << (bit % 8)));
        headers.push_back(h);
    }
    for (int delta : {1, 2, 0x80, 0xFF}) {
        Bytes h = good;
        h[6] = static_cast<std::uint8_t>(h[6] + delta);
        headers.push_back(h);
    }
    int case_number = 0;
    for (const auto& h : headers) {
        CAPTURE(hex(h));
        const Role role = case_number++ % 2 == 0 ? Role::accepted : Role::dialed;
        const auto errors_before = bench.m.stats().protocol_errors;
        auto bad = bench.attach(role);
        Bytes frame = h;
        mesh_test::append(frame, hello);
        bad.raw.write_all(frame);  // may fail once we have closed: that is fine
        bench.expect_disconnect(bad, mesh::errc::bad_checksum);
        CHECK(bench.m.stats().protocol_errors == errors_before + 1);
        bench.expect_nothing_delivered();
    }
    bench.probe();
    // A valid frame after all that, on a fresh connection, is delivered.
    auto good_peer = bench.attach(Role::accepted);
    REQUIRE(good_peer.raw.write_all(mesh_test::raw_frame(hello)));
    mesh::Envelope envelope;
    REQUIRE(bench.m.recv_timeout(envelope, 10s) == std::error_code());
    CHECK(envelope == mesh::Envelope(good_peer.id, hello));
}

TEST_CASE("A4 bad frame versions with a correct checksum: unsupported_version") {
    BadPeerBench<> bench;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        for (std::uint16_t version : {std::uint16_t{0}, std::uint16_t{2}, std::uint16_t{0x7FFF}, std::uint16_t{0xFFFF}}) {
            CAPTURE(version);
            const auto errors_before = bench.m.stats().protocol_errors;
            auto bad = bench.attach(role);
            Bytes frame = mesh_test::raw_header(5, version);
            mesh_test::append(frame, hello);
            bad.raw.write_all(frame);
            const auto start = Clock::now();
            bench.expect_disconnect(bad, mesh::errc::unsupported_version);
            CHECK(Clock::now() - start < 1s);
            CHECK(bench.m.stats().protocol_errors == errors_before + 1);
            bench.expect_nothing_delivered();
        }
        // Frames before the bad one are delivered; nothing after it.
        auto bad = bench.attach(role);
        Bytes bytes = mesh_test::raw_frame(mesh::to_payload("before"));
        mesh_test::append(bytes, mesh_test::raw_header(5, 2));
        mesh_test::append(bytes, hello);
        mesh_test::append(bytes, mesh_test::raw_frame(mesh::to_payload("after")));
        bad.raw.write_all(bytes);
        mesh::Envelope envelope;
        REQUIRE(bench.m.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope == mesh::Envelope(bad.id, mesh::to_payload("before")));
        bench.expect_disconnect(bad, mesh::errc::unsupported_version);
        bench.expect_nothing_delivered();
        bench.probe();
    }
}

TEST_CASE("A5 oversize length fields close the connection before any payload - the exact maximum is accepted") {
    BadPeerBench<Max64K> bench;
    constexpr std::uint32_t max = 64 * 1024;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        CHECK(hex(mesh_test::raw_header(0xFFFFFFFFu)) == "00 01 FF FF FF FF 03");
        for (std::uint32_t length : {0xFFFFFFFFu, max + 1, 0x80000000u, 16u * 1024 * 1024}) {
            CAPTURE(length);
            const auto rss_before = mesh_test::resident_bytes();
            const auto errors_before = bench.m.stats().protocol_errors;
            auto bad = bench.attach(role);
            // Only the header: the verdict cannot wait for a payload that never comes.
            REQUIRE(bad.raw.write_all(mesh_test::raw_header(length)));
            const auto start = Clock::now();
            bench.expect_disconnect(bad, mesh::errc::message_too_large);
            CHECK(Clock::now() - start < 1s);
            CHECK(bench.m.stats().protocol_errors == errors_before + 1);
            bench.expect_nothing_delivered();
            const auto rss_after = mesh_test::resident_bytes();
            CHECK(rss_after < rss_before + 64 * 1024 * 1024);
        }
        // The exact limit is a normal message.
        auto at_limit = bench.attach(role);
        mesh::Payload payload(max);
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i % 253);
        REQUIRE(at_limit.raw.write_all(mesh_test::raw_frame(payload)));
        mesh::Envelope envelope;
        REQUIRE(bench.m.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope.id == at_limit.id);
        CHECK(envelope.payload == payload);
        mesh::ConnectionEvent none;
        CHECK(bench.m.try_event(none) == mesh::errc::timeout);  // still connected
        (void)bench.m.remove(at_limit.id);
        bench.probe();
    }
}

TEST_CASE("A6 zero-length frames: one arrives empty - a burst of 100,000 all arrive through pause and resume") {
    BadPeerBench<Incoming64> bench;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto peer = bench.attach(role);
        REQUIRE(peer.raw.write_all(mesh_test::raw_frame({})));
        mesh::Envelope envelope{"", {1}};
        REQUIRE(bench.m.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope == mesh::Envelope(peer.id, {}));

        constexpr std::size_t burst = 100000;
        Bytes frames;
        frames.reserve(burst * 7);
        for (std::size_t i = 0; i < burst; ++i) mesh_test::append(frames, mesh_test::raw_header(0));
        bool wrote = false;
        std::thread writer([&] { wrote = peer.raw.write_all(frames, 30s); });
        std::size_t empty = 0, other = 0;
        for (std::size_t i = 0; i < burst; ++i) {
            if (bench.m.recv_timeout(envelope, 10s)) break;
            if (envelope.id == peer.id && envelope.payload.empty()) ++empty;
            else ++other;
        }
        writer.join();
        CHECK(wrote);
        CHECK(empty == burst);
        CHECK(other == 0);
        CHECK(bench.m.stats(peer.id).messages_in == burst + 1);
        CHECK(bench.m.stats(peer.id).bytes_in == 0);
        bench.probe();
        (void)bench.m.remove(peer.id);
    }
}

namespace {

// What a correct decoder makes of `data` followed by the end of the stream, in the
// library's documented order of checks (checksum, version, then length).
struct Verdict {
    std::vector<mesh::Payload> messages;
    std::error_code reason;
};

Verdict reference_decode(const Bytes& data, std::size_t max) {
    Verdict v;
    std::size_t at = 0;
    for (;;) {
        if (at == data.size()) {
            v.reason = mesh::errc::end_of_stream;
            return v;
        }
        if (data.size() - at < 7) {
            v.reason = mesh::errc::truncated_frame;
            return v;
        }
        const std::uint8_t* h = data.data() + at;
        unsigned sum = 0;
        for (int i = 0; i < 7; ++i) sum += h[i];
        const std::size_t length =
            (std::size_t{h[2]} << 24) | (std::size_t{h[3]} << 16) | (std::size_t{h[4]} << 8) | h[5];
        if ((sum & 0xFF) != 0) v.reason = mesh::errc::bad_checksum;
        else if (((h[0] << 8) | h[1]) != 1) v.reason = mesh::errc::unsupported_version;
        else if (length > max) v.reason = mesh::errc::message_too_large;
        else if (data.size() - at - 7 < length) v.reason = mesh::errc::truncated_frame;
        if (v.reason) return v;
        v.messages.emplace_back(h + 7, h + 7 + length);
        at += 7 + length;
    }
}

} // namespace

TEST_CASE("A8 64 KiB of seeded garbage after the handshake, 200 seeds: the verdict a correct decoder gives") {
    BadPeerBench<> bench;
    std::uint64_t protocol_errors = 0;
    for (std::uint32_t seed = 1; seed <= 200; ++seed) {
        CAPTURE(seed);
        std::mt19937 random(seed);
        Bytes garbage(64 * 1024);
        for (auto& b : garbage) b = static_cast<std::uint8_t>(random());
        if (seed % 10 == 0) {
            // Start some with valid frames so that the garbage comes later in the stream.
            Bytes prefix = mesh_test::raw_frame(mesh::to_payload("valid " + std::to_string(seed)));
            mesh_test::append(prefix, mesh_test::raw_frame({}));
            garbage.insert(garbage.begin(), prefix.begin(), prefix.end());
        }
        const auto expected = reference_decode(garbage, mesh::DefaultConfig::max_message_size);
        auto bad = bench.attach(seed % 2 == 0 ? Role::accepted : Role::dialed);
        bad.raw.write_all(garbage, 10s);  // fails once we have closed: fine
        bad.raw.shutdown_write();
        for (const auto& message : expected.messages) {
            mesh::Envelope envelope;
            REQUIRE(bench.m.recv_timeout(envelope, 10s) == std::error_code());
            CHECK(envelope == mesh::Envelope(bad.id, message));
        }
        bench.expect_disconnect(bad, expected.reason);
        bench.expect_nothing_delivered();
        if (expected.reason != mesh::errc::end_of_stream) ++protocol_errors;
        if (seed % 50 == 0) bench.probe();
    }
    CHECK(bench.m.stats().protocol_errors == protocol_errors);
    bench.probe();
}

} // TEST_SUITE

