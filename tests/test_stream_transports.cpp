// The scenarios every stream transport must pass alike: tcp://, unix:// and
// tcps:// (mutual and insecure), each described by a "kit".

#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/raw_peer.hpp"
#include "support/samples.hpp"
#include "support/tcp_peers.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

#if MESH_HAS_TLS
#include "support/test_pki.hpp"
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>

using namespace std::chrono_literals;

using mesh_test::Caps1;
using mesh_test::Caps16;
using mesh_test::hello;
using mesh_test::send_waiting;
using mesh_test::starts_with;
using mesh_test::world;
namespace {

using Clock = std::chrono::steady_clock;

struct TinyOutgoing : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 4;
};

// ---- kits: a transport, how to make one, a fresh bind address, a raw connect
// that ends a blocked accept() when our own connect failed, and what every
// connection they make must show ----

struct TcpKit {
    mesh::Tcp transport;
    std::string bind() const { return "tcp://127.0.0.1:0"; }
    static void poke(const std::string& endpoint) { mesh_test::raw_connect(endpoint); }
    static void check_link(const mesh::TcpConnection& client, const mesh::TcpConnection& server) {
        CHECK(starts_with(client.remote_endpoint(), "tcp://127.0.0.1:"));
        CHECK(server.remote_endpoint() == client.local_endpoint());
    }
};

struct UnixKit {
    mesh_test::TempDir dir;
    mesh::Unix transport;
    int made = 0;
    std::string bind() { return "unix://" + dir.path() + "/s" + std::to_string(made++) + ".sock"; }
    static void poke(const std::string& endpoint) {
        const std::string path(mesh::detail::endpoint_address(endpoint));
        mesh_test::RawSocket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof(address.sun_path) - 1);
        ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
    }
    static void check_link(const mesh::UnixConnection& client, const mesh::UnixConnection& server) {
        CHECK(starts_with(client.remote_endpoint(), "unix:///"));
        CHECK(server.local_endpoint() == client.remote_endpoint());
    }
};

#if MESH_HAS_TLS

namespace pki = mesh_test::pki;

// One CA and one leaf for the whole run (localhost and 127.0.0.1, both key usages).
struct TestPki {
    pki::Authority ca{"mesh stream transports CA"};
    pki::Identity leaf = ca.issue([] {
        pki::CertSpec spec;
        spec.dns_names = {"localhost"};
        spec.ip_addresses = {"127.0.0.1"};
        return spec;
    }());
};
const TestPki& test_pki() {
    static const TestPki instance;
    return instance;
}

// Mutual TLS from PEM files, Splinter's layout: one CA, one certificate and key for both roles.
struct TlsKit {
    pki::TempDir dir;
    mesh::Tls transport{options(dir)};
    std::string bind() const { return "tcps://127.0.0.1:0"; }
    static void poke(const std::string& endpoint) { mesh_test::raw_connect(endpoint); }
    // Each end verified the other's certificate.
    static void check_link(const mesh::TlsConnection& client, const mesh::TlsConnection& server) {
        CHECK(starts_with(client.remote_endpoint(), "tcps://127.0.0.1:"));
        CHECK(client.session().peer().verified);
        CHECK(server.session().peer().verified);
        CHECK(client.session().peer().common_name == "localhost");
        CHECK(server.session().peer().common_name == "localhost");
    }

    static mesh::TlsOptions options(const pki::TempDir& dir) {
        const auto& p = test_pki();
        return mesh::TlsOptions::from_files(dir.write("ca.pem", p.ca.cert_pem()), dir.write("cert.pem", p.leaf.cert_pem),
                                            dir.write("key.pem", p.leaf.key_pem));
    }
};

// Splinter's --tls-insecure: encrypted, nothing verified; only the server has a certificate.
struct TlsInsecureKit {
    mesh::Tls transport{options()};
    std::string bind() const { return "tcps://127.0.0.1:0"; }
    static void poke(const std::string& endpoint) { mesh_test::raw_connect(endpoint); }
    // Encrypted, yet nobody vouched for anybody.
    static void check_link(const mesh::TlsConnection& client, const mesh::TlsConnection& server) {
        CHECK(starts_with(client.remote_endpoint(), "tcps://127.0.0.1:"));
        CHECK_FALSE(client.session().peer().verified);
        CHECK_FALSE(server.session().peer().verified);
    }

    static mesh::TlsOptions options() {
        static const pki::Identity self = pki::self_signed();
        mesh::TlsOptions options;
        options.server.cert_pem = self.cert_pem;
        options.server.key_pem = self.key_pem;
        options.insecure = true;
        options.on_warning = [](const std::string&) {};  // expected here; keeps the output clean
        return options;
    }
};

#define MESH_STREAM_KITS TcpKit, UnixKit, TlsKit, TlsInsecureKit
#else
#define MESH_STREAM_KITS TcpKit, UnixKit
#endif

template <class Kit>
using Transport = std::decay_t<decltype(std::declval<Kit&>().transport)>;
template <class Kit>
using Connection = typename Transport<Kit>::connection_type;
template <class Kit>
using Listener = typename Transport<Kit>::listener_type;

template <class Kit>
struct Pair {
    Connection<Kit> client;  // the connecting end
    Connection<Kit> server;  // the accepted end
};

// Connects to `listener` while a thread accepts; never leaves the accept blocked.
template <class Kit>
Pair<Kit> connected_pair(Kit& kit, Listener<Kit>& listener) {
    Pair<Kit> pair;
    std::error_code accept_ec, connect_ec;
    std::atomic<bool> accepted{false};
    std::thread acceptor([&] {
        pair.server = listener.accept(accept_ec);
        accepted = true;
    });
    pair.client = kit.transport.connect(listener.endpoint(), connect_ec);
    if (!mesh_test::wait_until([&] { return accepted.load(); }, 5s)) Kit::poke(listener.endpoint());
    acceptor.join();
    REQUIRE_MESSAGE(!connect_ec, connect_ec.message());
    REQUIRE_MESSAGE(!accept_ec, accept_ec.message());
    Kit::check_link(pair.client, pair.server);
    return pair;
}

template <class Kit>
Pair<Kit> connected_pair(Kit& kit) {
    auto listener = kit.transport.listen(kit.bind());
    return connected_pair(kit, listener);
}

// A numbered payload of `size` bytes whose every byte depends on the number.
mesh::Payload patterned(std::uint32_t n, std::size_t size) {
    mesh::Payload p = mesh_test::numbered(n, size);
    for (std::size_t i = 4; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(n * 31 + i);
    return p;
}

} // namespace

TYPE_TO_STRING(TcpKit);
TYPE_TO_STRING(UnixKit);
#if MESH_HAS_TLS
TYPE_TO_STRING(TlsKit);
TYPE_TO_STRING(TlsInsecureKit);
#endif

TEST_CASE_TEMPLATE("stream transports: 5.1 #2 two meshes in two threads - the server gets hello under its id and replies",
                   Kit, MESH_STREAM_KITS) {
    Kit kit;
    auto listener = kit.transport.listen(kit.bind());
    const std::string endpoint = listener.endpoint();
    std::error_code client_ec, client_recv_ec = mesh::errc::not_connected;
    mesh::SendResult client_send;
    mesh::Envelope at_client;
    mesh::ShutdownReport client_report{1, 1};
    std::thread client([&] {
        mesh::Mesh<Transport<Kit>, Caps1> client_mesh;
        auto connection = kit.transport.connect(endpoint, client_ec);
        if (client_ec) return;
        client_mesh.add(std::move(connection), "client");
        client_send = client_mesh.send("client", mesh::Payload(hello));
        client_recv_ec = client_mesh.recv_timeout(at_client, 10s);
        client_report = client_mesh.shutdown(10s);
    });
    mesh::Mesh<Transport<Kit>, Caps1> server_mesh;
    std::error_code accept_ec = mesh::errc::not_connected, recv_ec = mesh::errc::not_connected;
    mesh::SendResult reply;
    mesh::Envelope at_server;
    std::atomic<bool> accepted{false};
    std::thread server([&] {
        auto connection = listener.accept(accept_ec);
        accepted = true;
        if (accept_ec) return;
        server_mesh.add(std::move(connection), "server");
        recv_ec = server_mesh.recv_timeout(at_server, 10s);
        if (!recv_ec) reply = server_mesh.send("server", mesh::Payload(world));
    });
    client.join();
    if (!mesh_test::wait_until([&] { return accepted.load(); }, 5s)) Kit::poke(endpoint);
    server.join();

    REQUIRE_MESSAGE(!client_ec, client_ec.message());
    REQUIRE_MESSAGE(!accept_ec, accept_ec.message());
    CHECK(client_send.ok());
    REQUIRE(recv_ec == std::error_code());
    CHECK(at_server == mesh::Envelope("server", hello));
    CHECK(reply.ok());
    REQUIRE(client_recv_ec == std::error_code());
    CHECK(at_client == mesh::Envelope("client", world));
    CHECK(client_report.discarded_outgoing == 0);
    CHECK(client_report.discarded_incoming == 0);
    const auto report = server_mesh.shutdown();
    CHECK(report.discarded_outgoing == 0);
    CHECK(report.discarded_incoming == 0);
    CHECK(server_mesh.is_shut_down());
}

TEST_CASE_TEMPLATE("stream transports: 5.1 #6 16 connections with both ends in one mesh - hello and world", Kit,
                   MESH_STREAM_KITS) {
    Kit kit;
    auto listener = kit.transport.listen(kit.bind());
    mesh::Mesh<Transport<Kit>, Caps16> m;
    for (int i = 0; i < 16; ++i) {
        auto pair = connected_pair(kit, listener);
        m.add(std::move(pair.client), "thread_" + std::to_string(i));
        m.add(std::move(pair.server), "main_" + std::to_string(i));
    }
    std::set<std::string> hello_ids;
    int not_hello = 0, send_failures = 0;
    std::thread other([&] {
        for (int i = 0; i < 16; ++i) {
            mesh::Envelope envelope;
            if (m.recv_timeout(envelope, 10s)) break;
            if (envelope.payload != hello) ++not_hello;
            hello_ids.insert(envelope.id);
        }
        for (const auto& id : hello_ids)
            if (!m.send(id, mesh::Payload(world)).ok()) ++send_failures;
    });
    for (int i = 0; i < 16; ++i) CHECK(m.send("main_" + std::to_string(i), mesh::Payload(hello)).ok());
    other.join();
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
    std::set<std::string> expected_main_ids;
    for (int i = 0; i < 16; ++i) expected_main_ids.insert("main_" + std::to_string(i));
    CHECK(world_ids == expected_main_ids);
    mesh::Envelope extra;
    CHECK(m.try_recv(extra) == mesh::errc::would_block);
    m.shutdown();
    CHECK(m.is_shut_down());
}

TEST_CASE_TEMPLATE("stream transports: accept_from - 20 clients get distinct ids and every message arrives", Kit,
                   MESH_STREAM_KITS) {
    Kit kit;
    mesh::Mesh<Transport<Kit>> server;
    auto listener = kit.transport.listen(kit.bind());
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));

    std::vector<Connection<Kit>> clients;
    for (int i = 0; i < 20; ++i) {
        std::error_code ec;
        clients.push_back(kit.transport.connect(endpoint, ec));  // the reactor answers the handshakes
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(clients.back().remote_endpoint() == endpoint);
    }
    std::set<std::string> connected;
    for (int i = 0; i < 20; ++i) {
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
        connected.insert(event->id);
    }
    CHECK(connected.size() == 20);
    CHECK(server.stats().connections == 20);

    // Each client says who it is; the ids it arrives under must be a one-to-one match.
    for (int i = 0; i < 20; ++i)
        for (int k = 0; k < 3; ++k)
            REQUIRE(clients[i].send(mesh::to_payload(std::to_string(i) + "/" + std::to_string(k))) ==
                    std::error_code());
    std::vector<std::string> id_of(20);
    std::vector<int> next_k(20, 0);
    for (int n = 0; n < 60; ++n) {
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        const auto text = mesh_test::text(envelope.payload);
        const int from = std::stoi(text.substr(0, text.find('/')));
        const int k = std::stoi(text.substr(text.find('/') + 1));
        REQUIRE(from >= 0);
        REQUIRE(from < 20);
        CHECK(k == next_k[from]++);  // per-connection order
        if (id_of[from].empty()) id_of[from] = envelope.id;
        CHECK(envelope.id == id_of[from]);
        CHECK(connected.count(envelope.id) == 1);
    }
    CHECK(std::set<std::string>(id_of.begin(), id_of.end()).size() == 20);
    for (int i = 0; i < 20; ++i) CHECK(server.send(id_of[i], mesh::to_payload("pong " + std::to_string(i))).ok());
    for (int i = 0; i < 20; ++i) {
        mesh::Payload got;
        REQUIRE(clients[i].recv_for(got, 10s) == std::error_code());
        CHECK(mesh_test::text(got) == "pong " + std::to_string(i));
    }
    mesh::ConnectionEvent none;
    CHECK(server.try_event(none) == mesh::errc::timeout);
}

TEST_CASE_TEMPLATE("stream transports: a 10,000-message stream crosses two meshes exactly and in order, both ways",
                   Kit, MESH_STREAM_KITS) {
    static const auto stream = mesh_test::make_stream();
    REQUIRE(stream.messages.size() == 10000);
    std::uint64_t stream_bytes = 0;
    for (const auto& message : stream.messages) stream_bytes += message.size();

    Kit kit;
    auto pair = connected_pair(kit);
    mesh::Mesh<Transport<Kit>> left, right;
    left.add(std::move(pair.client), "to-right");
    right.add(std::move(pair.server), "to-left");

    auto send_all = [&](auto& m, const std::string& id, std::size_t& refused) {
        for (const auto& message : stream.messages)
            if (!send_waiting(m, id, message).ok()) ++refused;
    };
    auto receive_all = [&](auto& m, const std::string& id, std::size_t& matched, std::size_t& first_bad) {
        for (std::size_t i = 0; i < stream.messages.size(); ++i) {
            mesh::Envelope envelope;
            if (m.recv_timeout(envelope, 10s)) break;
            if (envelope.id == id && envelope.payload == stream.messages[i]) ++matched;
            else if (first_bad == stream.messages.size()) first_bad = i;
        }
    };
    std::size_t refused_left = 0, refused_right = 0;
    std::size_t matched_left = 0, matched_right = 0;
    std::size_t bad_left = stream.messages.size(), bad_right = stream.messages.size();
    std::thread left_sender([&] { send_all(left, "to-right", refused_left); });
    std::thread right_sender([&] { send_all(right, "to-left", refused_right); });
    std::thread left_receiver([&] { receive_all(left, "to-right", matched_left, bad_left); });
    receive_all(right, "to-left", matched_right, bad_right);
    left_receiver.join();
    left_sender.join();
    right_sender.join();

    CHECK(refused_left == 0);
    CHECK(refused_right == 0);
    CHECK(bad_right == stream.messages.size());
    CHECK(bad_left == stream.messages.size());
    CHECK(matched_right == stream.messages.size());
    CHECK(matched_left == stream.messages.size());
    // Counters follow the data: a read is counted after its messages are queued, a
    // write when it completes, either of which may come just after the receiver saw them.
    for (auto* m : {&left, &right}) {
        REQUIRE(mesh_test::wait_until([&] {
            const auto stats = m->stats();
            return stats.messages_in == stream.messages.size() && stats.messages_out == stream.messages.size();
        }, 10s));
        const auto stats = m->stats();
        CHECK(stats.bytes_in == stream_bytes);
        CHECK(stats.bytes_out == stream_bytes);
        CHECK(stats.protocol_errors == 0);
    }
    mesh::Envelope extra;
    CHECK(left.try_recv(extra) == mesh::errc::would_block);
    CHECK(right.try_recv(extra) == mesh::errc::would_block);
}

TEST_CASE_TEMPLATE("stream transports: a connection removed from a mesh works on its own, then in another mesh", Kit,
                   MESH_STREAM_KITS) {
    Kit kit;
    auto pair = connected_pair(kit);
    mesh::Mesh<Transport<Kit>> m;
    m.add(std::move(pair.server), "server");
    REQUIRE(m.send("server", mesh::to_payload("from mesh")).ok());
    mesh::Payload got;
    REQUIRE(pair.client.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("from mesh"));
    REQUIRE(pair.client.send(mesh::to_payload("to mesh")) == std::error_code());
    mesh::Envelope envelope;
    REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
    CHECK(envelope == mesh::Envelope("server", mesh::to_payload("to mesh")));

    auto back = m.remove("server");
    REQUIRE(back.is_open());
    CHECK(m.stats().connections == 0);
    // Standalone, both ways, with a payload above the read buffer too.
    const mesh::Payload big = patterned(7, 70000);
    CHECK(back.send(mesh::to_payload("standalone out")) == std::error_code());
    CHECK(back.send(big) == std::error_code());
    REQUIRE(pair.client.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("standalone out"));
    REQUIRE(pair.client.recv_for(got, 10s) == std::error_code());
    CHECK(got == big);
    CHECK(pair.client.send(mesh::to_payload("standalone in")) == std::error_code());
    REQUIRE(back.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("standalone in"));
    CHECK(back.recv_for(got, 20ms) == mesh::errc::timeout);

    mesh::Mesh<Transport<Kit>> other;
    other.add(std::move(back), "again");
    REQUIRE(pair.client.send(mesh::to_payload("round two")) == std::error_code());
    REQUIRE(other.recv_timeout(envelope, 10s) == std::error_code());
    CHECK(envelope == mesh::Envelope("again", mesh::to_payload("round two")));
    REQUIRE(other.send("again", mesh::to_payload("and back")).ok());
    REQUIRE(pair.client.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("and back"));
}

TEST_CASE_TEMPLATE("stream transports: a peer that disconnects gives exactly one disconnected event, end_of_stream",
                   Kit, MESH_STREAM_KITS) {
    Kit kit;
    for (const bool mesh_has_accepted_end : {true, false}) {
        CAPTURE(mesh_has_accepted_end);
        auto pair = connected_pair(kit);
        auto& far = mesh_has_accepted_end ? pair.client : pair.server;
        auto& near = mesh_has_accepted_end ? pair.server : pair.client;
        mesh::Mesh<Transport<Kit>> m;
        m.add(std::move(near), "peer");
        REQUIRE(far.send(mesh::to_payload("last words")) == std::error_code());
        REQUIRE(far.disconnect() == std::error_code());

        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK(event->id == "peer");
        CHECK(event->reason == mesh::errc::end_of_stream);
        CHECK(event->discarded == 0);
        mesh::ConnectionEvent none;
        CHECK(m.next_event(none, 100ms) == mesh::errc::timeout);  // exactly one
        mesh::Envelope envelope;
        REQUIRE(m.try_recv(envelope) == std::error_code());  // what it sent came first
        CHECK(envelope == mesh::Envelope("peer", mesh::to_payload("last words")));
        CHECK(m.stats().protocol_errors == 0);

        const auto result = m.send("peer", mesh::Payload(hello));
        CHECK(result.error == mesh::errc::disconnected);
        CHECK(result.reason == mesh::errc::end_of_stream);
        std::error_code ec;
        auto back = m.remove("peer", ec);
        CHECK(!ec);
        CHECK_FALSE(back.is_open());
        CHECK(m.next_event(none, 20ms) == mesh::errc::timeout);
    }
}

TEST_CASE_TEMPLATE("stream transports: shutdown(flush) writes everything queued - shutdown() counts what it drops",
                   Kit, MESH_STREAM_KITS) {
    bool flush = true;
    SUBCASE("with a flush") { flush = true; }
    SUBCASE("without") { flush = false; }
    CAPTURE(flush);
    Kit kit;
    auto pair = connected_pair(kit);
    mesh::Mesh<Transport<Kit>> m;
    m.add(std::move(pair.server), "peer");
    // About 1 MiB, more than the socket buffers hold: much is still queued at shutdown.
    constexpr std::uint32_t count = 600;
    std::vector<mesh::Payload> sent;
    for (std::uint32_t i = 0; i < count; ++i) sent.push_back(patterned(i, 4 + (i * 2731) % 3500));
    std::vector<mesh::Payload> received;
    std::error_code end;
    std::thread reader([&] {
        mesh::Payload got;
        while (!(end = pair.client.recv_for(got, 10s))) received.push_back(got);
    });
    std::size_t refused = 0;
    for (const auto& payload : sent)
        if (!m.send("peer", mesh::Payload(payload)).ok()) ++refused;
    const auto report = flush ? m.shutdown(10s) : m.shutdown();
    reader.join();
    CHECK(refused == 0);
    CHECK(end != mesh::errc::timeout);  // the mesh closed it
    REQUIRE(received.size() <= sent.size());
    CHECK(std::equal(received.begin(), received.end(), sent.begin()));  // in order, intact
    if (flush) {
        CHECK(report.discarded_outgoing == 0);
        CHECK(end == mesh::errc::end_of_stream);
        CHECK(received.size() == sent.size());
    } else {
        // Accepted means written or counted: a batch cut short counts whole, so
        // the sum may exceed what was sent, never fall short of it.
        CHECK(received.size() + report.discarded_outgoing >= sent.size());
    }
}

TEST_CASE_TEMPLATE("stream transports: backpressure - a peer that does not read makes send report queue_full, "
                   "and nothing accepted is lost",
                   Kit, MESH_STREAM_KITS) {
    Kit kit;
    auto pair = connected_pair(kit);
    mesh::Mesh<Transport<Kit>, TinyOutgoing> m;
    m.add(std::move(pair.server), "peer");
    constexpr std::size_t size = 8 * 1024;

    // Send until refused and the mesh has stopped writing: the socket buffers and the
    // four-slot queue are full.
    std::uint32_t accepted = 0;
    std::size_t refused = 0;
    bool untouched = true;
    const auto deadline = Clock::now() + 20s;
    auto last_progress = Clock::now();
    while (Clock::now() < deadline) {
        mesh::Envelope envelope("peer", patterned(accepted, size));
        const auto result = m.send(std::move(envelope));
        if (result.ok()) {
            ++accepted;
            last_progress = Clock::now();
            continue;
        }
        REQUIRE(result.error == mesh::errc::queue_full);
        ++refused;
        untouched = untouched && envelope.payload == patterned(accepted, size);
        if (Clock::now() - last_progress >= 100ms) break;
        std::this_thread::yield();
    }
    REQUIRE(refused > 0);
    CHECK(untouched);  // a refused envelope keeps its payload
    CHECK(accepted >= TinyOutgoing::outgoing_capacity);
    CHECK(m.stats("peer").rejected_full == refused);

    // Now the peer reads: every accepted message, in order, and nothing else.
    std::uint32_t in_order = 0;
    for (std::uint32_t i = 0; i < accepted; ++i) {
        mesh::Payload got;
        if (pair.client.recv_for(got, 10s)) break;
        if (got != patterned(i, size)) break;
        ++in_order;
    }
    CHECK(in_order == accepted);
    mesh::Payload extra;
    CHECK(pair.client.recv_for(extra, 50ms) == mesh::errc::timeout);
    // The last batch's completion may be counted just after its bytes arrived.
    CHECK(mesh_test::wait_until([&] { return m.stats("peer").messages_out == accepted; }, 5s));
    CHECK(m.stats("peer").discarded == 0);
    // And the queue takes messages again.
    REQUIRE(send_waiting(m, "peer", mesh::to_payload("after")).ok());
    REQUIRE(pair.client.recv_for(extra, 10s) == std::error_code());
    CHECK(extra == mesh::to_payload("after"));
}
