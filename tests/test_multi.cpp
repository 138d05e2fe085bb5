#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/samples.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"
#if MESH_HAS_TLS
#include "support/test_pki.hpp"
#endif

#include <chrono>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using mesh::ConnectionEvent;
using mesh::Envelope;
using mesh::errc;
using mesh::Payload;
using mesh::to_payload;
using mesh_test::text;

using mesh_test::Outgoing4;
using mesh_test::hello;
using mesh_test::port_of;
using mesh_test::starts_with;
using mesh_test::world;
namespace {

using TcpFirst = mesh::BasicMulti<mesh::Tcp, mesh::Inproc>;
using InprocFirst = mesh::BasicMulti<mesh::Inproc, mesh::Tcp>;

// Splinter's transport harness (section 5.3) through a multi transport: the client
// checks the remote endpoint, sends [0,1,2] and expects [3,4,5]; the server answers.
template <class Multi>
void transport_harness(Multi& multi, typename Multi::listener_type& listener) {
    const std::string endpoint = listener.endpoint();
    std::string client_remote;
    Payload client_got;
    std::error_code client_ec, client_send_ec, client_recv_ec;
    std::thread client([&] {
        auto connection = multi.connect(endpoint, client_ec);
        if (client_ec) return;
        client_remote = connection.remote_endpoint();
        client_send_ec = connection.send(Payload{0, 1, 2});
        client_recv_ec = connection.recv_for(client_got, 10s);
    });
    std::error_code ec;
    auto server = listener.accept(ec);
    Payload got;
    if (!ec) {
        CHECK(server.recv_for(got, 10s) == std::error_code());
        CHECK(server.send(Payload{3, 4, 5}) == std::error_code());
    }
    client.join();

    REQUIRE_MESSAGE(!ec, ec.message());
    REQUIRE_MESSAGE(!client_ec, client_ec.message());
    CHECK(got == Payload{0, 1, 2});
    CHECK(client_remote == endpoint);
    CHECK(client_send_ec == std::error_code());
    CHECK(client_recv_ec == std::error_code());
    CHECK(client_got == Payload{3, 4, 5});
}

// Near ends (in a Mesh<Multi>) and far ends (standalone) of one tcp and one inproc connection.
struct MixedLinks {
    mesh::Multi::connection_type near_tcp, near_inproc;
    mesh::TcpConnection far_tcp;
    mesh::InprocConnection far_inproc;
};

MixedLinks mixed_links(mesh::Multi& multi, const std::string& inproc_name) {
    MixedLinks links;
    auto tcp_listener = multi.get<mesh::Tcp>().listen("127.0.0.1:0");
    {
        mesh_test::BackgroundAccept accept(tcp_listener);
        links.near_tcp = multi.connect(tcp_listener.endpoint());
        accept.join();
        REQUIRE_MESSAGE(!accept.ec, accept.ec.message());
        links.far_tcp = std::move(accept.connection);
    }
    auto inproc_listener = multi.get<mesh::Inproc>().listen(inproc_name);
    links.near_inproc = multi.connect("inproc://" + inproc_name);
    links.far_inproc = inproc_listener.accept();
    REQUIRE(links.near_tcp.get_if<mesh::TcpConnection>() != nullptr);
    REQUIRE(links.near_inproc.get_if<mesh::InprocConnection>() != nullptr);
    return links;
}

} // namespace

TEST_SUITE("multi") {

// ---- Splinter's multi transport scenarios (section 5.7) ----

TEST_CASE("5.7 accepts: a bare address, tcp:// and inproc:// - not foo://") {
    CHECK(mesh::Multi::accepts("127.0.0.1:0"));
    CHECK(mesh::Multi::accepts("tcp://127.0.0.1:0"));
    CHECK(mesh::Multi::accepts("tcp://somewhere.example.com:4000"));
    CHECK(mesh::Multi::accepts("inproc://name"));
    CHECK_FALSE(mesh::Multi::accepts("foo://127.0.0.1:0"));
    CHECK_FALSE(mesh::Multi::accepts(""));
    // Any member accepting is enough.
    CHECK_FALSE(mesh::BasicMulti<mesh::Tcp>::accepts("inproc://name"));
    CHECK(mesh::BasicMulti<mesh::Inproc>::accepts("inproc://name"));
}

TEST_CASE_TEMPLATE("5.7 explicit schemes pick their member, whatever the order", Multi, TcpFirst, InprocFirst) {
    Multi multi;
    auto tcp_listener = multi.listen("tcp://127.0.0.1:0");
    CHECK(tcp_listener.template get_if<mesh::TcpListener>() != nullptr);
    CHECK(starts_with(tcp_listener.endpoint(), "tcp://127.0.0.1:"));
    CHECK(port_of(tcp_listener.endpoint()) != "0");
    transport_harness(multi, tcp_listener);

    auto inproc_listener = multi.listen("inproc://explicit");
    CHECK(inproc_listener.template get_if<mesh::InprocListener>() != nullptr);
    CHECK(inproc_listener.endpoint() == "inproc://explicit");
    transport_harness(multi, inproc_listener);
}

TEST_CASE("5.7 a bare bind goes to the first member: Tcp before Inproc listens on TCP") {
    TcpFirst multi;
    auto listener = multi.listen("127.0.0.1:0");
    REQUIRE(listener.get_if<mesh::TcpListener>() != nullptr);
    CHECK(listener.get_if<mesh::InprocListener>() == nullptr);
    CHECK(starts_with(listener.endpoint(), "tcp://127.0.0.1:"));
    CHECK(port_of(listener.endpoint()) != "0");
    transport_harness(multi, listener);
}

TEST_CASE("5.7 a bare bind goes to the first member: Inproc before Tcp takes it as a name") {
    // Inproc accepts any string without a scheme, so "127.0.0.1:0" is just a name to it.
    CHECK(mesh::Inproc::accepts("127.0.0.1:0"));
    InprocFirst multi;
    auto listener = multi.listen("127.0.0.1:0");
    REQUIRE(listener.get_if<mesh::InprocListener>() != nullptr);
    CHECK(listener.endpoint() == "inproc://127.0.0.1:0");
    transport_harness(multi, listener);
    // A bare connect goes there too.
    auto client = multi.connect("127.0.0.1:0");
    CHECK(client.get_if<mesh::InprocConnection>() != nullptr);
    auto server = listener.accept();
    REQUIRE(client.send(Payload(hello)) == std::error_code());
    Payload got;
    REQUIRE(server.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);
}

TEST_CASE("5.7 an unknown protocol is unknown_scheme - the throwing form says Unknown protocol \"...\"") {
    mesh::Multi multi;
    std::error_code ec;
    auto connection = multi.connect("foo://someplace:8000", ec);
    CHECK(ec == errc::unknown_scheme);
    CHECK_FALSE(connection.is_open());
    auto listener = multi.listen("foo://someplace:8000", ec);
    CHECK(ec == errc::unknown_scheme);

    auto expect_message = [](auto&& call) {
        try {
            call();
            FAIL("no exception");
        } catch (const std::system_error& e) {
            CHECK(e.code() == errc::unknown_scheme);
            const std::string what = e.what();
            CHECK_MESSAGE(what.find("Unknown protocol \"foo://someplace:8000\"") != std::string::npos, what);
        }
    };
    expect_message([&] { multi.connect("foo://someplace:8000"); });
    expect_message([&] { multi.listen("foo://someplace:8000"); });
}

TEST_CASE_TEMPLATE("5.7 outbound to a plain Tcp listener: the server says hello, the client world", Multi, TcpFirst,
                   InprocFirst) {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    Multi multi;
    mesh_test::BackgroundAccept accept(listener);
    std::error_code ec;
    auto client = multi.connect(listener.endpoint(), ec);
    accept.join();
    REQUIRE_MESSAGE(!ec, ec.message());
    REQUIRE_MESSAGE(!accept.ec, accept.ec.message());
    CHECK(client.template get_if<mesh::TcpConnection>() != nullptr);
    CHECK(client.remote_endpoint() == listener.endpoint());
    CHECK(client.local_endpoint() == accept.connection.remote_endpoint());

    REQUIRE(accept.connection.send(hello) == std::error_code());
    Payload got;
    REQUIRE(client.recv_for(got, 10s) == std::error_code());  // one recv: one whole message
    CHECK(got == hello);
    REQUIRE(client.send(Payload(world)) == std::error_code());
    REQUIRE(accept.connection.recv_for(got, 10s) == std::error_code());
    CHECK(got == world);
}

// ---- the connection and the transport on their own ----

TEST_CASE("a default-constructed multi connection is not open") {
    mesh::Multi::connection_type connection;
    Payload got;
    CHECK_FALSE(connection.is_open());
    CHECK(connection.send(Payload{1}) == errc::not_connected);
    CHECK(connection.recv(got) == errc::not_connected);
    CHECK(connection.disconnect() == errc::not_connected);
    mesh::Mesh<mesh::Multi> m;
    std::error_code ec;
    m.add(std::move(connection), "closed", ec);
    CHECK(ec == errc::not_connected);
}

TEST_CASE("members are reachable with get: an inproc name listened on through it is reachable through the multi") {
    mesh::Multi multi;
    auto listener = multi.get<mesh::Inproc>().listen("direct");
    auto client = multi.connect("inproc://direct");
    auto server = listener.accept();
    REQUIRE(client.send(Payload(hello)) == std::error_code());
    Payload got;
    REQUIRE(server.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);

    const mesh::Multi& constant = multi;
    CHECK(constant.get<mesh::Tcp>().options().max_message_size == mesh::TcpOptions().max_message_size);
    mesh::TcpOptions options;
    options.max_message_size = 1000;
    TcpFirst configured{mesh::Tcp(options), mesh::Inproc()};
    CHECK(configured.get<mesh::Tcp>().options().max_message_size == 1000);
}

// ---- one Mesh<Multi> holding a tcp and an inproc connection at once ----

TEST_CASE("Mesh<Multi>: a tcp and an inproc connection side by side - messages both ways, then removal") {
    mesh::Multi multi;
    auto links = mixed_links(multi, "side-by-side");
    mesh::Mesh<mesh::Multi> m;
    m.add(std::move(links.near_tcp), "tcp");
    m.add(std::move(links.near_inproc), "inproc");

    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        CHECK(m.send("tcp", to_payload("to tcp " + std::to_string(round))).ok());
        CHECK(m.send("inproc", to_payload("to inproc " + std::to_string(round))).ok());
        Payload got;
        REQUIRE(links.far_tcp.recv_for(got, 10s) == std::error_code());
        CHECK(text(got) == "to tcp " + std::to_string(round));
        REQUIRE(links.far_inproc.recv_for(got, 10s) == std::error_code());
        CHECK(text(got) == "to inproc " + std::to_string(round));

        REQUIRE(links.far_tcp.send(to_payload("from tcp " + std::to_string(round))) == std::error_code());
        REQUIRE(links.far_inproc.send(to_payload("from inproc " + std::to_string(round))) == std::error_code());
        std::map<std::string, std::string> received;
        for (int i = 0; i < 2; ++i) {
            Envelope envelope;
            REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
            received[envelope.id] = text(envelope.payload);
        }
        CHECK(received == std::map<std::string, std::string>{{"tcp", "from tcp " + std::to_string(round)},
                                                              {"inproc", "from inproc " + std::to_string(round)}});
    }
    CHECK(m.stats("tcp").messages_in == 3);
    CHECK(m.stats("inproc").messages_in == 3);
    CHECK(m.stats("inproc").messages_out == 3);
    CHECK(mesh_test::wait_until([&] { return m.stats("tcp").messages_out == 3; }));

    // Each comes back usable on its own, still the same kind of connection.
    auto tcp_back = m.remove("tcp");
    auto inproc_back = m.remove("inproc");
    REQUIRE(tcp_back.get_if<mesh::TcpConnection>() != nullptr);
    REQUIRE(inproc_back.get_if<mesh::InprocConnection>() != nullptr);
    CHECK(m.send("tcp", Payload(hello)).error == errc::not_found);
    CHECK(m.send("inproc", Payload(hello)).error == errc::not_found);

    Payload got;
    REQUIRE(tcp_back.send(Payload(hello)) == std::error_code());
    REQUIRE(links.far_tcp.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);
    REQUIRE(links.far_tcp.send(world) == std::error_code());
    REQUIRE(tcp_back.recv_for(got, 10s) == std::error_code());
    CHECK(got == world);

    REQUIRE(inproc_back.send(Payload(hello)) == std::error_code());
    REQUIRE(links.far_inproc.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);
    REQUIRE(links.far_inproc.send(Payload(world)) == std::error_code());
    REQUIRE(inproc_back.recv_for(got, 10s) == std::error_code());
    CHECK(got == world);

    ConnectionEvent none;
    CHECK(m.try_event(none) == errc::timeout);
}

TEST_CASE("Mesh<Multi>: far ends closing give one disconnected event each, end_of_stream") {
    mesh::Multi multi;
    auto links = mixed_links(multi, "closing");
    mesh::Mesh<mesh::Multi> m;
    m.add(std::move(links.near_tcp), "tcp");
    m.add(std::move(links.near_inproc), "inproc");

    links.far_inproc.disconnect();
    links.far_tcp.disconnect();
    std::set<std::string> ended;
    for (int i = 0; i < 2; ++i) {
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == ConnectionEvent::Kind::disconnected);
        CHECK(event->reason == errc::end_of_stream);
        ended.insert(event->id);
    }
    CHECK(ended == std::set<std::string>{"tcp", "inproc"});
    ConnectionEvent none;
    CHECK(m.try_event(none) == errc::timeout);

    for (const std::string id : {"tcp", "inproc"}) {
        CAPTURE(id);
        const auto result = m.send(id, Payload(hello));
        CHECK(result.error == errc::disconnected);
        CHECK(result.reason == errc::end_of_stream);
        std::error_code ec;
        auto back = m.remove(id, ec);
        CHECK_FALSE(ec);
    }
}

TEST_CASE("Mesh<Multi>: an inproc connection's full queue is queue_full, a tcp neighbour is unaffected") {
    mesh::Multi multi;
    auto links = mixed_links(multi, "full");
    mesh::Mesh<mesh::Multi, Outgoing4> m;
    m.add(std::move(links.near_tcp), "tcp");
    m.add(std::move(links.near_inproc), "inproc");

    std::size_t rejected = 0;
    const std::size_t accepted = mesh_test::fill_until_full(m, "inproc", rejected);
    // Sent directly into the peer's queue, limited to outgoing_capacity: no reactor writer.
    CHECK(accepted == Outgoing4::outgoing_capacity);
    CHECK(rejected >= 1);
    CHECK(m.stats("inproc").queue_depth == Outgoing4::outgoing_capacity);
    CHECK(m.stats("inproc").rejected_full == rejected);

    Envelope envelope("inproc", mesh_test::numbered(static_cast<std::uint32_t>(accepted)));
    const auto copy = envelope;
    CHECK(m.send(std::move(envelope)).error == errc::queue_full);
    CHECK(envelope == copy);

    // The tcp connection goes on meanwhile.
    CHECK(m.send("tcp", Payload(hello)).ok());
    Payload got;
    REQUIRE(links.far_tcp.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);

    // One read makes room all the way back to the sender.
    REQUIRE(links.far_inproc.recv_for(got, 10s) == std::error_code());
    CHECK(mesh_test::number_of(got) == 0);
    CHECK(m.send(std::move(envelope)).ok());
    for (std::uint32_t i = 1; i <= accepted; ++i) {
        REQUIRE(links.far_inproc.recv_for(got, 10s) == std::error_code());
        REQUIRE(mesh_test::number_of(got) == i);
    }
    CHECK(links.far_inproc.recv_for(got, 10ms) == errc::timeout);
}

TEST_CASE("Mesh<Multi>::accept_from: a tcp and an inproc listener, each connection announced and served") {
    mesh::Multi multi;
    mesh::Mesh<mesh::Multi> server;
    auto tcp_listener = multi.listen("127.0.0.1:0");
    auto inproc_listener = multi.listen("inproc://door");
    const std::string tcp_endpoint = tcp_listener.endpoint();
    // Inproc connections all have the listener's name as remote endpoint: name them apart.
    int inproc_count = 0;
    auto early = multi.connect("inproc://door");  // waits in the backlog until accept_from
    server.accept_from(std::move(tcp_listener));
    server.accept_from(std::move(inproc_listener), [&inproc_count](const mesh::Multi::connection_type& c) {
        return c.get_if<mesh::InprocConnection>() ? "inproc-" + std::to_string(inproc_count++) : c.remote_endpoint();
    });

    auto tcp_client = multi.connect(tcp_endpoint);  // the reactor answers the handshake
    auto late = multi.connect("inproc://door");
    std::set<std::string> connected;
    for (int i = 0; i < 3; ++i) {
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == ConnectionEvent::Kind::connected);
        connected.insert(event->id);
    }
    const std::string tcp_id = tcp_client.local_endpoint();
    CHECK(connected == std::set<std::string>{tcp_id, "inproc-0", "inproc-1"});

    REQUIRE(server.send(tcp_id, Payload(hello)).ok());
    Payload got;
    REQUIRE(tcp_client.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);
    for (const std::string id : {"inproc-0", "inproc-1"}) {
        REQUIRE(server.send(id, to_payload(id)).ok());
    }
    std::set<std::string> inproc_got;
    for (auto* client : {&early, &late}) {
        REQUIRE(client->recv_for(got, 10s) == std::error_code());
        inproc_got.insert(text(got));
        REQUIRE(client->send(Payload(world)) == std::error_code());
    }
    CHECK(inproc_got == std::set<std::string>{"inproc-0", "inproc-1"});
    REQUIRE(tcp_client.send(Payload(world)) == std::error_code());
    std::set<std::string> from;
    for (int i = 0; i < 3; ++i) {
        Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope.payload == world);
        from.insert(envelope.id);
    }
    CHECK(from == connected);

    // Shutdown closes the listeners: the inproc name is free again.
    server.shutdown();
    std::error_code ec;
    multi.connect("inproc://door", ec);
    CHECK(ec == errc::connection_refused);
}

} // TEST_SUITE

#if MESH_HAS_TLS

namespace {

// A mutual-TLS transport with a fresh CA and a certificate for localhost/127.0.0.1.
struct TlsSetup {
    mesh_test::pki::Authority ca{"multi test CA"};
    mesh_test::pki::Identity node = ca.issue();
    mesh::TlsOptions options() const {
        mesh::TlsOptions o;
        o.server = {{}, ca.cert_pem(), {}, node.cert_pem, {}, node.key_pem};
        o.client = o.server;
        return o;
    }
};

} // namespace

TEST_SUITE("multi") {

TEST_CASE("5.7 with TLS: accepts tcps:// and tls:// - [Tls, Tcp] listens on TLS for a bare bind, [Tcp, Tls] on TCP") {
    CHECK(mesh::Multi::accepts("tcps://127.0.0.1:0"));
    CHECK(mesh::Multi::accepts("tls://127.0.0.1:0"));
    CHECK(mesh::Multi::accepts("unix:///tmp/x.sock"));
    TlsSetup setup;
    mesh::BasicMulti<mesh::Tls, mesh::Tcp> tls_first{mesh::Tls(setup.options()), mesh::Tcp()};
    auto tls_listener = tls_first.listen("127.0.0.1:0");
    CHECK(starts_with(tls_listener.endpoint(), "tcps://127.0.0.1:"));
    transport_harness(tls_first, tls_listener);

    mesh::BasicMulti<mesh::Tcp, mesh::Tls> tcp_first{mesh::Tcp(), mesh::Tls(setup.options())};
    auto tcp_listener = tcp_first.listen("127.0.0.1:0");
    CHECK(starts_with(tcp_listener.endpoint(), "tcp://127.0.0.1:"));
    transport_harness(tcp_first, tcp_listener);
}

TEST_CASE("Mesh<Multi>: tcp, tcps, unix and inproc connections in one mesh, accepted and dialled, all served") {
    TlsSetup setup;
    mesh_test::pki::TempDir dir;
    mesh::Multi multi;
    multi.get<mesh::Tls>() = mesh::Tls(setup.options());

    mesh::Mesh<mesh::Multi> server, client;
    const std::vector<std::string> binds = {"tcp://127.0.0.1:0", "tcps://127.0.0.1:0", "unix://" + dir.path() + "/m.sock",
                                            "inproc://multi-all"};
    std::vector<std::string> endpoints;
    for (const auto& bind : binds) {
        auto listener = multi.listen(bind);
        endpoints.push_back(listener.endpoint());
        // Inproc ends share the listener's name, so ids come from a counter.
        server.accept_from(std::move(listener), [n = 0, bind](const mesh::Multi::connection_type&) mutable {
            return bind.substr(0, bind.find("://")) + "-" + std::to_string(n++);
        });
    }
    for (std::size_t i = 0; i < endpoints.size(); ++i) client.add(multi.connect(endpoints[i]), binds[i]);

    // Each dialled connection says who it is; the server answers each on the id it arrived with.
    for (const auto& bind : binds) REQUIRE(client.send(bind, to_payload(bind)).ok());
    std::set<std::string> seen;
    for (std::size_t i = 0; i < binds.size(); ++i) {
        Envelope e;
        REQUIRE(server.recv_timeout(e, 10s) == std::error_code());
        const std::string from = text(e.payload);
        CHECK(starts_with(e.id, from.substr(0, from.find("://")) + "-"));
        seen.insert(from);
        REQUIRE(server.send(e.id, to_payload("re " + from)).ok());
    }
    CHECK(seen == std::set<std::string>(binds.begin(), binds.end()));
    std::set<std::string> replies;
    for (std::size_t i = 0; i < binds.size(); ++i) {
        Envelope e;
        REQUIRE(client.recv_timeout(e, 10s) == std::error_code());
        CHECK(text(e.payload) == "re " + e.id);
        replies.insert(e.id);
    }
    CHECK(replies.size() == binds.size());

    auto tls = client.remove(binds[1]);
    const auto* connection = tls.get_if<mesh::TlsConnection>();
    REQUIRE(connection != nullptr);
    CHECK(connection->session().peer().verified);
    CHECK(connection->session().peer().common_name == "localhost");
    server.shutdown();
    client.shutdown();
}

} // TEST_SUITE
#endif
