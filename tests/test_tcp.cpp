#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/raw_peer.hpp"
#include "support/samples.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using mesh_test::Bytes;
using mesh_test::hex;
using mesh_test::Role;

using mesh_test::port_of;
namespace {

using Clock = std::chrono::steady_clock;

struct TinyIncoming : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 2;
};

// Splinter's transport harness (section 5.3): the client checks the remote endpoint,
// sends [0,1,2] and expects [3,4,5]; the server accepts and answers.
void transport_harness(const std::string& bind) {
    mesh::Tcp tcp;
    auto listener = tcp.listen(bind);
    const std::string endpoint = listener.endpoint();
    CHECK(endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
    CHECK(port_of(endpoint) != "0");

    std::string client_remote, client_local;
    mesh::Payload client_got;
    std::error_code client_ec, client_send_ec, client_recv_ec;
    std::thread client([&] {
        auto connection = tcp.connect(endpoint, client_ec);
        if (client_ec) return;
        client_remote = connection.remote_endpoint();
        client_local = connection.local_endpoint();
        client_send_ec = connection.send({0, 1, 2});
        client_recv_ec = connection.recv_for(client_got, 10s);
    });
    std::error_code ec;
    auto server = listener.accept(ec);
    mesh::Payload got;
    if (!ec) {
        CHECK(server.recv_for(got, 10s) == std::error_code());
        CHECK(server.send({3, 4, 5}) == std::error_code());
    }
    client.join();

    REQUIRE_MESSAGE(!ec, ec.message());
    REQUIRE_MESSAGE(!client_ec, client_ec.message());
    CHECK(got == mesh::Payload{0, 1, 2});
    CHECK(client_remote == endpoint);
    CHECK(!client_send_ec);
    CHECK(!client_recv_ec);
    CHECK(client_got == mesh::Payload{3, 4, 5});
    // Each side names the other as the other names itself.
    CHECK(server.local_endpoint() == endpoint);
    CHECK(server.remote_endpoint() == client_local);
}

} // namespace

TEST_SUITE("tcp") {

TEST_CASE("accepts: tcp:// and any address without a scheme - not tls://, tcps:// or other schemes") {
    CHECK(mesh::Tcp::accepts("127.0.0.1:0"));
    CHECK(mesh::Tcp::accepts("tcp://127.0.0.1:0"));
    CHECK(mesh::Tcp::accepts("tcp://somewhere.example.com:4000"));
    CHECK(mesh::Tcp::accepts("[::1]:4000"));
    CHECK(mesh::Tcp::accepts("localhost:4000"));
    CHECK_FALSE(mesh::Tcp::accepts("tls://127.0.0.1:0"));
    CHECK_FALSE(mesh::Tcp::accepts("tcps://127.0.0.1:0"));
    CHECK_FALSE(mesh::Tcp::accepts("foo://127.0.0.1:0"));
    CHECK_FALSE(mesh::Tcp::accepts("inproc://name"));
}

TEST_CASE("listen and connect refuse other schemes and malformed addresses") {
    mesh::Tcp tcp;
    std::error_code ec;
    tcp.listen("tls://127.0.0.1:0", ec);
    CHECK(ec == mesh::errc::unknown_scheme);
    tcp.connect("foo://someplace:8000", ec);
    CHECK(ec == mesh::errc::unknown_scheme);
    for (const char* bad : {"tcp://127.0.0.1", "127.0.0.1:", "tcp://:80", "127.0.0.1:65536", "127.0.0.1:8x",
                            "tcp://[::1", "tcp://[::1]80"}) {
        CAPTURE(bad);
        tcp.listen(bad, ec);
        CHECK(ec == mesh::errc::invalid_endpoint);
        tcp.connect(bad, ec);
        CHECK(ec == mesh::errc::invalid_endpoint);
    }
    CHECK_THROWS_AS(tcp.listen("tls://127.0.0.1:0"), std::system_error);
}

TEST_CASE("listen on a port already taken is address_in_use") {
    mesh::Tcp tcp;
    auto first = tcp.listen("127.0.0.1:0");
    std::error_code ec;
    auto second = tcp.listen(first.endpoint(), ec);
    CHECK(ec == mesh::errc::address_in_use);
    CHECK(ec == std::errc::address_in_use);
}

TEST_CASE("transport harness with a bare bind address") { transport_harness("127.0.0.1:0"); }

TEST_CASE("transport harness with tcp://") { transport_harness("tcp://127.0.0.1:0"); }

TEST_CASE("IPv6 loopback: [::1]:0") {
    if (!mesh_test::have_ipv6_loopback()) {
        MESSAGE("no IPv6 loopback on this machine: skipped");
        return;
    }
    mesh::Tcp tcp;
    auto listener = tcp.listen("tcp://[::1]:0");
    const std::string endpoint = listener.endpoint();
    CHECK(endpoint.rfind("tcp://[::1]:", 0) == 0);
    mesh_test::BackgroundAccept accept(listener);
    std::error_code ec;
    auto client = tcp.connect("[::1]:" + port_of(endpoint), ec);  // bare form too
    accept.join();
    REQUIRE_MESSAGE(!ec, ec.message());
    REQUIRE_MESSAGE(!accept.ec, accept.ec.message());
    auto server = std::move(accept.connection);
    CHECK(client.remote_endpoint() == endpoint);
    CHECK(client.local_endpoint().rfind("tcp://[::1]:", 0) == 0);
    CHECK(server.remote_endpoint() == client.local_endpoint());
    CHECK(client.send(mesh::to_payload("over v6")) == std::error_code());
    mesh::Payload got;
    CHECK(server.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("over v6"));
}

TEST_CASE("a DNS name is resolved - endpoints are numeric and captured at connect time") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    mesh_test::BackgroundAccept accept(listener);
    std::error_code ec;
    auto client = tcp.connect("localhost:" + port_of(endpoint), ec);
    accept.join();
    REQUIRE_MESSAGE(!ec, ec.message());
    REQUIRE_MESSAGE(!accept.ec, accept.ec.message());
    auto server = std::move(accept.connection);
    CHECK(client.remote_endpoint() == endpoint);  // numeric, as Splinter forms it
    CHECK(client.local_endpoint().rfind("tcp://127.0.0.1:", 0) == 0);
    const std::string remote = client.remote_endpoint(), local = client.local_endpoint();

    // The peer goes away with a reset and we disconnect: the names are still there.
    server.socket().set_option(asio::socket_base::linger(true, 0));
    server.disconnect();
    mesh::Payload got;
    CHECK(client.recv_for(got, 10s) != std::error_code());
    CHECK(client.remote_endpoint() == remote);
    CHECK(client.local_endpoint() == local);
    CHECK(client.disconnect() == std::error_code());
    CHECK(client.remote_endpoint() == remote);
    CHECK(client.local_endpoint() == local);
    CHECK_FALSE(client.is_open());
}

TEST_CASE("handshake bytes, connecting role: sends exactly 00 01 00 01, accepts 00 01 - frames may follow at once") {
    mesh_test::RawListener raw_listener;
    REQUIRE(raw_listener.valid());
    Bytes hello, extra_before_reply;
    mesh_test::RawSocket peer;
    std::thread raw([&] {
        peer = raw_listener.accept();
        if (!peer.valid()) return;
        hello = peer.read_exact(4);
        // The connector must wait for the reply before sending anything else.
        if (!peer.quiet_for(100ms)) extra_before_reply = peer.read_exact(1, 10ms);
        // Reply and a first frame in a single write.
        Bytes reply = mesh_test::raw_reply(1);
        mesh_test::append(reply, mesh_test::raw_frame(mesh::to_payload("first")));
        peer.write_all(reply);
    });
    mesh::Tcp tcp;
    std::error_code ec;
    auto connection = tcp.connect(raw_listener.endpoint(), ec);
    raw.join();
    REQUIRE_MESSAGE(!ec, ec.message());
    CHECK(hex(hello) == "00 01 00 01");
    CHECK(extra_before_reply.empty());
    mesh::Payload got;
    CHECK(connection.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("first"));
    // And "hello" goes out as the worked example of section 4.3.2.
    CHECK(connection.send(mesh::to_payload("hello")) == std::error_code());
    CHECK(hex(peer.read_exact(12)) == "00 01 00 00 00 05 FA 68 65 6C 6C 6F");
}

TEST_CASE("handshake bytes, listening role: answers exactly 00 01 - frames may follow the hello at once") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    auto peer = mesh_test::raw_connect(listener.endpoint());
    REQUIRE(peer.valid());
    Bytes hello = mesh_test::raw_hello(1, 1);
    mesh_test::append(hello, mesh_test::raw_frame(mesh::to_payload("early")));
    REQUIRE(peer.write_all(hello));
    std::error_code ec;
    auto connection = listener.accept(ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    CHECK(hex(peer.read_exact(2)) == "00 01");
    CHECK(peer.quiet_for(50ms));  // nothing but the two reply bytes
    mesh::Payload got;
    CHECK(connection.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("early"));
}

TEST_CASE("handshake, listening role: a range without v1 gets 00 00, then the close - accept fails") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    struct Range {
        std::uint16_t min, max;
    };
    for (Range range : {Range{3, 5}, Range{2, 9}, Range{0, 0}, Range{2, 1}, Range{1, 0}, Range{0xFFFF, 0xFFFF}}) {
        CAPTURE(range.min);
        CAPTURE(range.max);
        auto peer = mesh_test::raw_connect(listener.endpoint());
        REQUIRE(peer.valid());
        REQUIRE(peer.write_all(mesh_test::raw_hello(range.min, range.max)));
        std::error_code ec;
        auto connection = listener.accept(ec);
        CHECK(ec == mesh::errc::unsupported_version);
        CHECK_FALSE(connection.is_open());
        CHECK(hex(peer.read_exact(2)) == "00 00");
        CHECK(peer.wait_closed(5s));
    }
    // Ranges that include v1 are fine, whatever else they offer.
    for (auto max : {std::uint16_t{1}, std::uint16_t{2}, std::uint16_t{0xFFFF}}) {
        auto peer = mesh_test::raw_connect(listener.endpoint());
        REQUIRE(peer.write_all(mesh_test::raw_hello(0, max)));
        std::error_code ec;
        auto connection = listener.accept(ec);
        CHECK(!ec);
        CHECK(hex(peer.read_exact(2)) == "00 01");
    }
}

TEST_CASE("handshake, connecting role: a reply other than 00 01 is unsupported_version") {
    for (std::uint16_t reply : {std::uint16_t{0}, std::uint16_t{2}, std::uint16_t{0x0100}, std::uint16_t{0xFFFF}}) {
        CAPTURE(reply);
        mesh_test::RawListener raw_listener;
        mesh_test::RawSocket peer;
        std::thread raw([&] {
            peer = raw_listener.accept();
            if (peer.valid()) peer.answer_hello(reply);
        });
        mesh::Tcp tcp;
        std::error_code ec;
        auto connection = tcp.connect(raw_listener.endpoint(), ec);
        raw.join();
        CHECK(ec == mesh::errc::unsupported_version);
        CHECK_FALSE(connection.is_open());
        CHECK(peer.wait_closed(5s));  // we do not keep a connection we cannot speak on
    }
}

TEST_CASE("handshake: a peer that closes during it is handshake_failed, in both roles") {
    mesh::Tcp tcp;
    SUBCASE("listening role") {
        auto listener = tcp.listen("127.0.0.1:0");
        for (std::size_t sent : {0u, 1u, 3u}) {
            CAPTURE(sent);
            auto peer = mesh_test::raw_connect(listener.endpoint());
            REQUIRE(peer.valid());
            const Bytes hello = mesh_test::raw_hello(1, 1);
            REQUIRE(peer.write_all(hello.data(), sent));
            peer.close();
            std::error_code ec;
            auto connection = listener.accept(ec);
            CHECK(ec == mesh::errc::handshake_failed);
        }
        // The listener still accepts afterwards.
        auto peer = mesh_test::raw_connect(listener.endpoint());
        REQUIRE(peer.write_all(mesh_test::raw_hello(1, 1)));
        std::error_code ec;
        auto connection = listener.accept(ec);
        CHECK(!ec);
        CHECK(hex(peer.read_exact(2)) == "00 01");
    }
    SUBCASE("connecting role") {
        for (std::size_t replied : {0u, 1u}) {
            CAPTURE(replied);
            mesh_test::RawListener raw_listener;
            std::thread raw([&] {
                auto peer = raw_listener.accept();
                if (!peer.valid()) return;
                peer.read_exact(4);
                const Bytes reply = mesh_test::raw_reply(1);
                peer.write_all(reply.data(), replied);
                peer.close();
            });
            std::error_code ec;
            auto connection = tcp.connect(raw_listener.endpoint(), ec);
            raw.join();
            CHECK(ec == mesh::errc::handshake_failed);
        }
        // Reset instead of close: still a handshake failure.
        mesh_test::RawListener raw_listener;
        std::thread raw([&] {
            auto peer = raw_listener.accept();
            if (!peer.valid()) return;
            peer.read_exact(4);
            peer.reset();
        });
        std::error_code ec;
        auto connection = tcp.connect(raw_listener.endpoint(), ec);
        raw.join();
        CHECK(ec == mesh::errc::handshake_failed);
    }
}

TEST_CASE("handshake deadline, listening role: a silent client makes a blocking accept time out") {
    mesh::TcpOptions options;
    options.handshake_timeout = 300ms;
    mesh::Tcp tcp(options);
    auto listener = tcp.listen("127.0.0.1:0");
    auto silent = mesh_test::raw_connect(listener.endpoint());
    REQUIRE(silent.valid());
    SUBCASE("nothing sent") {}
    SUBCASE("half a hello sent") { REQUIRE(silent.write_all(Bytes{0, 1})); }
    const auto start = Clock::now();
    std::error_code ec;
    auto connection = listener.accept(ec);
    const auto took = Clock::now() - start;
    CHECK(ec == mesh::errc::timeout);
    CHECK(ec == std::errc::timed_out);
    CHECK(took >= 250ms);
    CHECK(took < 5s);
    CHECK(silent.wait_closed(5s));
    // The next client is served normally.
    auto good = mesh_test::raw_connect(listener.endpoint());
    REQUIRE(good.write_all(mesh_test::raw_hello(1, 1)));
    connection = listener.accept(ec);
    CHECK(!ec);
    CHECK(hex(good.read_exact(2)) == "00 01");
}

TEST_CASE("handshake deadline, connecting role: a listener that never answers makes connect time out") {
    mesh::TcpOptions options;
    options.handshake_timeout = 300ms;
    mesh::Tcp tcp(options);
    mesh_test::RawListener raw_listener;
    bool peer_saw_close = false;
    Bytes hello;
    std::thread raw([&] {
        auto peer = raw_listener.accept();
        if (!peer.valid()) return;
        hello = peer.read_exact(4);
        peer_saw_close = peer.wait_closed(10s);  // never answers
    });
    const auto start = Clock::now();
    std::error_code ec;
    auto connection = tcp.connect(raw_listener.endpoint(), ec);
    const auto took = Clock::now() - start;
    raw.join();
    CHECK(ec == mesh::errc::timeout);
    CHECK(took >= 250ms);
    CHECK(took < 5s);
    CHECK(hex(hello) == "00 01 00 01");
    CHECK(peer_saw_close);
    CHECK_FALSE(connection.is_open());
}

TEST_CASE("connect_timeout bounds a TCP connect that nobody answers") {
    // A listener with a full backlog that never accepts leaves further SYNs unanswered.
    mesh_test::RawListener raw_listener(false, 0);
    REQUIRE(raw_listener.valid());
    std::vector<mesh_test::RawSocket> fillers;
    sockaddr_storage address{};
    socklen_t length = 0;
    REQUIRE(mesh_test::parse_numeric_endpoint(raw_listener.endpoint(), address, length));
    for (int i = 0; i < 4; ++i) {
        fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        ::connect(fillers.back().fd(), reinterpret_cast<sockaddr*>(&address), length);  // in progress
    }
    mesh::TcpOptions options;
    options.connect_timeout = 300ms;
    options.handshake_timeout = 5000ms;  // so that only the connect deadline can end it in time
    mesh::Tcp tcp(options);
    const auto start = Clock::now();
    std::error_code ec;
    auto connection = tcp.connect(raw_listener.endpoint(), ec);
    const auto took = Clock::now() - start;
    CHECK(ec == mesh::errc::timeout);
    CHECK(took >= 250ms);
    CHECK(took < 3s);
    CHECK_FALSE(connection.is_open());
}

TEST_CASE("connect to a closed port is connection_refused") {
    mesh::Tcp tcp;
    const auto port = mesh_test::closed_port();
    std::error_code ec;
    auto connection = tcp.connect("tcp://127.0.0.1:" + std::to_string(port), ec);
    CHECK(ec == mesh::errc::connection_refused);
    CHECK(ec == std::errc::connection_refused);
    CHECK_FALSE(connection.is_open());
    CHECK_THROWS_AS(tcp.connect("127.0.0.1:" + std::to_string(port)), std::system_error);

    // A listener that was closed refuses too.
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    listener.close();
    tcp.connect(endpoint, ec);
    CHECK(ec == mesh::errc::connection_refused);
    std::error_code accept_ec;
    listener.accept(accept_ec);
    CHECK(accept_ec == mesh::errc::not_connected);
}

TEST_CASE("the worked headers of section 4.3.2 appear byte-exactly on the wire, in both roles") {
    struct Worked {
        std::size_t length;
        const char* header;
    };
    const Worked worked[] = {
        {0, "00 01 00 00 00 00 FF"},     {2, "00 01 00 00 00 02 FD"},
        {3, "00 01 00 00 00 03 FC"},     {5, "00 01 00 00 00 05 FA"},
        {300, "00 01 00 00 01 2C D2"},   {65536, "00 01 00 01 00 00 FE"},
    };
    mesh::Tcp tcp;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        for (const auto& w : worked) {
            CAPTURE(w.length);
            mesh::Payload payload(w.length);
            for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 7 + 1);
            if (w.length == 5) payload = mesh::to_payload("hello");
            REQUIRE(link.connection.send(payload) == std::error_code());
            CHECK(hex(link.raw.read_exact(7)) == w.header);
            CHECK(link.raw.read_exact(w.length) == payload);
        }
        // The Splinter heartbeat frame.
        REQUIRE(link.connection.send({0x08, 0x02}) == std::error_code());
        CHECK(hex(link.raw.read_exact(9)) == "00 01 00 00 00 02 FD 08 02");
        CHECK(link.raw.quiet_for(20ms));  // nothing more than the frames
    }
}

TEST_CASE("frames from a raw peer are received, zero-length ones as empty payloads") {
    mesh::Tcp tcp;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        Bytes wire = mesh_test::raw_frame({});
        mesh_test::append(wire, mesh_test::raw_frame(mesh::to_payload("hello")));
        mesh_test::append(wire, mesh_test::raw_frame({}));
        mesh_test::append(wire, mesh_test::raw_frame(mesh::Payload(70000, 0xAB)));
        mesh_test::append(wire, mesh_test::raw_frame({}));
        CHECK(hex(Bytes(wire.begin(), wire.begin() + 7)) == "00 01 00 00 00 00 FF");
        REQUIRE(link.raw.write_all(wire));
        const std::vector<mesh::Payload> expected = {
            {}, mesh::to_payload("hello"), {}, mesh::Payload(70000, 0xAB), {}};
        for (const auto& e : expected) {
            mesh::Payload got{1, 2, 3};
            REQUIRE(link.connection.recv_for(got, 10s) == std::error_code());
            CHECK(got == e);
        }
        // We send an empty one: seven bytes and nothing else.
        REQUIRE(link.connection.send({}) == std::error_code());
        CHECK(hex(link.raw.read_exact(7)) == "00 01 00 00 00 00 FF");
    }
}

TEST_CASE("standalone recv: timeout, end_of_stream between frames, truncated_frame inside one, reset") {
    mesh::Tcp tcp;
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        mesh::Payload got;
        SUBCASE("timeout") {
            auto link = mesh_test::raw_link(tcp, role);
            const auto start = Clock::now();
            CHECK(link.connection.recv_for(got, 100ms) == mesh::errc::timeout);
            CHECK(Clock::now() - start >= 90ms);
        }
        SUBCASE("clean close between frames") {
            auto link = mesh_test::raw_link(tcp, role);
            REQUIRE(link.raw.write_all(mesh_test::raw_frame(mesh::to_payload("last"))));
            link.raw.close();
            CHECK(link.connection.recv_for(got, 10s) == std::error_code());
            CHECK(got == mesh::to_payload("last"));
            CHECK(link.connection.recv_for(got, 10s) == mesh::errc::end_of_stream);
            CHECK(link.connection.recv_for(got, 10s) == mesh::errc::end_of_stream);  // and stays so
        }
        SUBCASE("close inside a header or a body") {
            const Bytes frame = mesh_test::raw_frame(mesh::to_payload("cut short"));
            for (std::size_t k = 1; k < frame.size(); ++k) {
                CAPTURE(k);
                auto link = mesh_test::raw_link(tcp, role);
                REQUIRE(link.raw.write_all(frame.data(), k));
                link.raw.shutdown_write();
                CHECK(link.connection.recv_for(got, 10s) == mesh::errc::truncated_frame);
            }
        }
        SUBCASE("reset") {
            auto link = mesh_test::raw_link(tcp, role);
            link.raw.reset();
            const auto ec = link.connection.recv_for(got, 10s);
            CHECK(ec == asio::error::connection_reset);
        }
    }
}

TEST_CASE("standalone recv refuses an oversize length before reading any payload") {
    mesh::TcpOptions options;
    options.max_message_size = 1024;
    mesh::Tcp tcp(options);
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        for (std::uint32_t length : {1025u, 0xFFFFFFFFu}) {
            CAPTURE(length);
            auto link = mesh_test::raw_link(tcp, role);
            REQUIRE(link.raw.write_all(mesh_test::raw_header(length)));  // no payload follows
            mesh::Payload got;
            CHECK(link.connection.recv_for(got, 10s) == mesh::errc::message_too_large);
        }
        auto link = mesh_test::raw_link(tcp, role);
        REQUIRE(link.raw.write_all(mesh_test::raw_frame(mesh::Payload(1024, 7))));
        mesh::Payload got;
        CHECK(link.connection.recv_for(got, 10s) == std::error_code());
        CHECK(got == mesh::Payload(1024, 7));
    }
}

TEST_CASE("max_message_size: send of an oversize payload is refused before anything is written") {
    mesh::TcpOptions options;
    options.max_message_size = 1024;
    mesh::Tcp tcp(options);
    for (Role role : {Role::accepted, Role::dialed}) {
        CAPTURE(mesh_test::role_name(role));
        auto link = mesh_test::raw_link(tcp, role);
        CHECK(link.connection.send(mesh::Payload(1025, 1)) == mesh::errc::message_too_large);
        CHECK(link.connection.send(mesh::Payload(1024, 2)) == std::error_code());
        // The first bytes on the wire belong to the second payload.
        CHECK(hex(link.raw.read_exact(7)) == hex(mesh_test::raw_header(1024)));
        CHECK(link.raw.read_exact(1024) == Bytes(1024, 2));
        CHECK(link.raw.quiet_for(20ms));
    }
}

TEST_CASE("send and recv after disconnect are not_connected") {
    mesh::Tcp tcp;
    auto pair = mesh_test::tcp_pair(tcp);
    CHECK(pair.client.is_open());
    CHECK(pair.client.disconnect() == std::error_code());
    CHECK(pair.client.disconnect() == mesh::errc::not_connected);
    CHECK(pair.client.send({1}) == mesh::errc::not_connected);
    mesh::Payload got;
    CHECK(pair.client.recv_for(got, 10ms) == mesh::errc::not_connected);
    CHECK(pair.server.recv_for(got, 10s) == mesh::errc::end_of_stream);
    mesh::TcpConnection never;
    CHECK_FALSE(never.is_open());
    CHECK(never.send({1}) == mesh::errc::not_connected);
    CHECK(never.recv_for(got, 10ms) == mesh::errc::not_connected);
    CHECK(never.disconnect() == mesh::errc::not_connected);
}

TEST_CASE("a connection removed from a mesh stays usable on its own, in both directions") {
    mesh::Tcp tcp;
    auto pair = mesh_test::tcp_pair(tcp);
    mesh::Mesh<mesh::Tcp> m;
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
    CHECK(back.remote_endpoint() == pair.client.local_endpoint());
    CHECK(back.send(mesh::to_payload("standalone out")) == std::error_code());
    REQUIRE(pair.client.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("standalone out"));
    CHECK(pair.client.send(mesh::to_payload("standalone in")) == std::error_code());
    REQUIRE(back.recv_for(got, 10s) == std::error_code());
    CHECK(got == mesh::to_payload("standalone in"));

    // And it can go back into a mesh, the same or another one.
    mesh::Mesh<mesh::Tcp> other;
    other.add(std::move(back), "again");
    REQUIRE(pair.client.send(mesh::to_payload("round two")) == std::error_code());
    REQUIRE(other.recv_timeout(envelope, 10s) == std::error_code());
    CHECK(envelope == mesh::Envelope("again", mesh::to_payload("round two")));
}

// The envelope the reactor holds while the incoming queue is full goes back to the
// removed connection, which hands it out first.
TEST_CASE("removing a connection keeps input the mesh had read but not delivered") {
    // Incoming capacity 2: the reactor stops reading with frames still buffered.
    mesh::Tcp tcp;
    auto pair = mesh_test::tcp_pair(tcp);
    mesh::Mesh<mesh::Tcp, TinyIncoming> m;
    m.add(std::move(pair.server), "server");
    constexpr std::uint32_t total = 50;
    for (std::uint32_t i = 0; i < total; ++i) REQUIRE(pair.client.send(mesh_test::numbered(i)) == std::error_code());
    // Wait until the queue is full (the reactor has read and paused).
    mesh::Envelope envelope;
    REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
    std::vector<std::uint32_t> seen{mesh_test::number_of(envelope.payload)};
    REQUIRE(mesh_test::wait_until([&] { return m.stats("server").messages_in >= 3; }, 10s));
    auto back = m.remove("server");
    while (!m.try_recv(envelope)) seen.push_back(mesh_test::number_of(envelope.payload));
    mesh::Payload got;
    while (seen.size() < total && !back.recv_for(got, 2s)) seen.push_back(mesh_test::number_of(got));
    REQUIRE(seen.size() == total);
    for (std::uint32_t i = 0; i < total; ++i) CHECK(seen[i] == i);
}

} // TEST_SUITE
