#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using mesh::errc;
using mesh::Payload;
using mesh_test::connected_pair;
using mesh_test::number_of;
using mesh_test::numbered;
using mesh_test::wait_until;
using namespace std::chrono_literals;

using mesh_test::pipe_capacity;
namespace {
}

TEST_SUITE("inproc") {

// Splinter's shared transport harness, with bind "test".
TEST_CASE("transport harness: listen, connect, exchange [0,1,2] and [3,4,5]") {
    mesh::Inproc transport;
    auto listener = transport.listen("test");
    const std::string endpoint = listener.endpoint();
    CHECK(endpoint == "inproc://test");

    std::error_code client_send, client_recv;
    Payload client_got;
    std::string client_remote;
    std::thread client([&] {
        auto connection = transport.connect(endpoint);
        client_remote = connection.remote_endpoint();
        client_send = connection.send(Payload{0, 1, 2});
        client_recv = connection.recv(client_got);
    });

    auto server = listener.accept();
    Payload got;
    REQUIRE_FALSE(server.recv(got));
    CHECK(got == Payload{0, 1, 2});
    CHECK_FALSE(server.send(Payload{3, 4, 5}));
    client.join();

    CHECK(client_remote == endpoint);
    CHECK_FALSE(client_send);
    CHECK_FALSE(client_recv);
    CHECK(client_got == Payload{3, 4, 5});
    CHECK(server.remote_endpoint() == endpoint);
}

TEST_CASE("accepts inproc:// endpoints and bare names, nothing else") {
    CHECK(mesh::Inproc::accepts("inproc://x"));
    CHECK(mesh::Inproc::accepts("x"));
    CHECK_FALSE(mesh::Inproc::accepts("tcp://127.0.0.1:0"));
    CHECK_FALSE(mesh::Inproc::accepts(""));

    mesh::Inproc transport;
    auto bare = transport.listen("bare-name");
    CHECK(bare.endpoint() == "inproc://bare-name");
    std::error_code ec;
    auto connection = transport.connect("bare-name", ec);
    CHECK_FALSE(ec);
    CHECK(connection.is_open());
}

TEST_CASE("payloads move: the receiver gets the very buffer that was sent") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "move");
    Payload sent(4096, 7);
    const auto* data = sent.data();
    REQUIRE_FALSE(pair.client.send(std::move(sent)));
    Payload got;
    REQUIRE_FALSE(pair.server.recv(got));
    CHECK(got.data() == data);
    CHECK(got.size() == 4096);
}

TEST_CASE("an oversize send is refused before it is queued") {
    mesh::Inproc transport(16);
    auto pair = connected_pair(transport, "small");
    Payload big(17, 1);
    CHECK(pair.client.send(std::move(big)) == errc::message_too_large);
    CHECK(big.size() == 17);  // not moved from
    Payload got;
    CHECK(pair.server.recv_for(got, 20ms) == errc::timeout);
    Payload fits(16, 2);
    CHECK_FALSE(pair.client.send(std::move(fits)));
    REQUIRE_FALSE(pair.server.recv(got));
    CHECK(got == Payload(16, 2));
}

TEST_CASE("bounded: a sender blocks while the pipe is full and resumes when the reader drains") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "bounded");
    for (std::uint32_t i = 0; i < pipe_capacity; ++i) REQUIRE_FALSE(pair.client.send(numbered(i)));

    std::atomic<bool> returned{false};
    std::error_code blocked_result = errc::timeout;
    std::thread sender([&] {
        blocked_result = pair.client.send(numbered(static_cast<std::uint32_t>(pipe_capacity)));
        returned = true;
    });
    // The send must still be waiting after a generous moment.
    CHECK_FALSE(wait_until([&] { return returned.load(); }, 200ms));

    Payload got;
    REQUIRE_FALSE(pair.server.recv(got));
    CHECK(number_of(got) == 0);
    CHECK(wait_until([&] { return returned.load(); }, 5s));
    sender.join();
    CHECK_FALSE(blocked_result);

    for (std::uint32_t i = 1; i <= pipe_capacity; ++i) {
        REQUIRE_FALSE(pair.server.recv(got));
        REQUIRE(number_of(got) == i);
    }
    CHECK(pair.server.recv_for(got, 10ms) == errc::timeout);
}

TEST_CASE("blocking send and recv on two threads deliver every message once, in order") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "stream");
    constexpr std::uint32_t count = 100000;
    std::thread sender([&] {
        for (std::uint32_t i = 0; i < count; ++i)
            if (pair.client.send(numbered(i))) return;
    });
    std::uint32_t expected = 0;
    Payload got;
    while (expected < count) {
        const auto ec = pair.server.recv_for(got, 5s);
        if (ec) {
            FAIL_CHECK("recv failed at " << expected << ": " << ec.message());
            break;
        }
        if (number_of(got) != expected) {
            FAIL_CHECK("got " << number_of(got) << ", expected " << expected);
            break;
        }
        ++expected;
    }
    sender.join();
    CHECK(expected == count);
}

TEST_CASE("disconnect: the peer receives what was sent, then end_of_stream - its send is disconnected") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "disconnect");
    REQUIRE_FALSE(pair.client.send(Payload{1}));
    REQUIRE_FALSE(pair.client.send(Payload{2}));
    CHECK_FALSE(pair.client.disconnect());
    CHECK_FALSE(pair.client.is_open());
    CHECK(pair.client.disconnect() == errc::not_connected);

    Payload got;
    REQUIRE_FALSE(pair.server.recv(got));
    CHECK(got == Payload{1});
    REQUIRE_FALSE(pair.server.recv(got));
    CHECK(got == Payload{2});
    CHECK(pair.server.recv(got) == errc::end_of_stream);
    CHECK(pair.server.recv(got) == errc::end_of_stream);
    CHECK(pair.server.send(Payload{3}) == errc::disconnected);

    // The closed side itself is no longer connected.
    CHECK(pair.client.send(Payload{4}) == errc::not_connected);
    CHECK(pair.client.recv(got) == errc::not_connected);
}

TEST_CASE("destroying one side acts as a disconnect, also for a recv already waiting") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "destroy");

    std::atomic<bool> returned{false};
    std::error_code waiting_result;
    std::thread reader([&] {
        Payload got;
        waiting_result = pair.server.recv(got);
        returned = true;
    });
    CHECK_FALSE(wait_until([&] { return returned.load(); }, 50ms));
    { auto gone = std::move(pair.client); }
    CHECK(wait_until([&] { return returned.load(); }, 5s));
    reader.join();
    CHECK(waiting_result == errc::end_of_stream);
    CHECK(pair.server.send(Payload{1}) == errc::disconnected);
}

TEST_CASE("destroying the receiver wakes a sender blocked on a full pipe") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "destroy-reader");
    for (std::uint32_t i = 0; i < pipe_capacity; ++i) REQUIRE_FALSE(pair.client.send(numbered(i)));

    std::atomic<bool> returned{false};
    std::error_code blocked_result;
    std::thread sender([&] {
        blocked_result = pair.client.send(numbered(0));
        returned = true;
    });
    CHECK_FALSE(wait_until([&] { return returned.load(); }, 50ms));
    { auto gone = std::move(pair.server); }
    CHECK(wait_until([&] { return returned.load(); }, 5s));
    sender.join();
    CHECK(blocked_result == errc::disconnected);
}

TEST_CASE("listening twice on one name is address_in_use") {
    mesh::Inproc transport;
    auto first = transport.listen("taken");
    std::error_code ec;
    auto second = transport.listen("inproc://taken", ec);
    CHECK(ec == errc::address_in_use);
    CHECK(ec == std::errc::address_in_use);
    CHECK_THROWS_AS(transport.listen("taken"), std::system_error);

    // The first listener is unaffected.
    auto client = transport.connect("inproc://taken");
    auto server = first.accept_for(1s, ec);
    CHECK_FALSE(ec);
    CHECK(server.is_open());

    // Copies of a transport share names; separate transports do not.
    mesh::Inproc copy = transport;
    copy.listen("taken", ec);
    CHECK(ec == errc::address_in_use);
    mesh::Inproc other;
    auto elsewhere = other.listen("taken", ec);
    CHECK_FALSE(ec);
}

TEST_CASE("connecting to a name nobody listens on is connection_refused") {
    mesh::Inproc transport;
    std::error_code ec;
    auto connection = transport.connect("inproc://nobody", ec);
    CHECK(ec == errc::connection_refused);
    CHECK(ec == std::errc::connection_refused);
    CHECK_FALSE(connection.is_open());
    CHECK_THROWS_AS(transport.connect("inproc://nobody"), std::system_error);
}

TEST_CASE("a destroyed listener frees its name") {
    mesh::Inproc transport;
    std::error_code ec;
    {
        auto listener = transport.listen("reuse");
    }
    auto refused = transport.connect("inproc://reuse", ec);
    CHECK(ec == errc::connection_refused);

    auto again = transport.listen("reuse", ec);
    REQUIRE_FALSE(ec);
    auto client = transport.connect("inproc://reuse", ec);
    REQUIRE_FALSE(ec);
    auto server = again.accept_for(1s, ec);
    REQUIRE_FALSE(ec);
    REQUIRE_FALSE(client.send(Payload{9}));
    Payload got;
    REQUIRE_FALSE(server.recv(got));
    CHECK(got == Payload{9});

    // close() frees it too.
    again.close();
    transport.connect("inproc://reuse", ec);
    CHECK(ec == errc::connection_refused);
    transport.listen("reuse", ec);
    CHECK_FALSE(ec);
}

TEST_CASE("connections not yet accepted end when their listener goes") {
    mesh::Inproc transport;
    mesh::InprocConnection client;
    {
        auto listener = transport.listen("backlog");
        client = transport.connect(listener.endpoint());
    }
    Payload got;
    CHECK(client.recv_for(got, 5s) == errc::end_of_stream);
    CHECK(client.send(Payload{1}) == errc::disconnected);
}

TEST_CASE("an unknown scheme is unknown_scheme, for listen and connect") {
    mesh::Inproc transport;
    std::error_code ec;
    transport.listen("tcp://127.0.0.1:0", ec);
    CHECK(ec == errc::unknown_scheme);
    transport.connect("ws://example.com/x", ec);
    CHECK(ec == errc::unknown_scheme);
    CHECK_THROWS_AS(transport.listen("tcp://127.0.0.1:0"), std::system_error);
    transport.listen("inproc://", ec);
    CHECK(ec == errc::invalid_endpoint);
}

TEST_CASE("accept_for times out with errc::timeout - recv_for likewise") {
    mesh::Inproc transport;
    auto listener = transport.listen("lonely");
    std::error_code ec;
    const auto start = std::chrono::steady_clock::now();
    auto connection = listener.accept_for(30ms, ec);
    CHECK(ec == errc::timeout);
    CHECK(ec == std::errc::timed_out);
    CHECK_FALSE(connection.is_open());
    CHECK(std::chrono::steady_clock::now() - start >= 30ms);

    auto pair = connected_pair(transport, "quiet");
    Payload got;
    CHECK(pair.server.recv_for(got, 10ms) == errc::timeout);
}

TEST_CASE("a default-constructed connection is not connected") {
    mesh::InprocConnection connection;
    Payload got;
    CHECK_FALSE(connection.is_open());
    CHECK(connection.send(Payload{1}) == errc::not_connected);
    CHECK(connection.recv(got) == errc::not_connected);
    CHECK(connection.disconnect() == errc::not_connected);
}

} // TEST_SUITE
