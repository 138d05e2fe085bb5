#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using mesh::ConnectionEvent;
using mesh::Envelope;
using mesh::errc;
using mesh::Payload;
using mesh::to_payload;
using mesh_test::connected_pair;
using mesh_test::fill_until_full;
using mesh_test::number_of;
using mesh_test::numbered;
using mesh_test::settled;
using mesh_test::spin_until;
using mesh_test::text;
using mesh_test::wait_until;
using namespace std::chrono_literals;

using mesh_test::Caps1;
using mesh_test::Caps16;
using mesh_test::Outgoing4;
using mesh_test::SmallMessages;
using mesh_test::pipe_capacity;
namespace {



using Mesh = mesh::Mesh<mesh::Inproc>;

// Sends until accepted or `timeout` passes, retrying only on queue_full.
template <class M>
mesh::SendResult send_retrying(M& m, const std::string& id, Payload payload,
                               std::chrono::milliseconds timeout = 5s) {
    mesh::SendResult result;
    spin_until([&] {
        result = m.send(id, std::move(payload));
        return result.error != errc::queue_full;
    }, timeout);
    return result;
}

} // namespace

TEST_SUITE("mesh") {

// ---- Splinter's mesh scenarios (section 5.1), over inproc ----

TEST_CASE("5.1 #1 the module example: capacities (1, 1), both ends in one mesh") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Caps1> m;
    auto listener = transport.listen("inproc://my-connection");
    m.add(transport.connect(listener.endpoint()), "client");
    m.add(listener.accept(), "server");

    CHECK(m.send(Envelope("client", to_payload("hello"))).ok());
    Envelope envelope;
    REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
    CHECK(text(envelope.payload) == "hello");
    CHECK(envelope.id == "server");

    std::error_code ec;
    auto client = m.remove("client", ec);
    CHECK_FALSE(ec);
    CHECK(client.is_open());
    auto server = m.remove("server", ec);
    CHECK_FALSE(ec);
    CHECK(server.is_open());
    CHECK(m.stats().connections == 0);
}

TEST_CASE("5.1 #2 two meshes in two threads: the server receives \"hello\" under its own id") {
    mesh::Inproc transport;
    auto listener = transport.listen("send-receive");
    const auto endpoint = listener.endpoint();

    mesh::SendResult client_sent;
    mesh::ShutdownReport client_report;
    bool client_down = false;
    std::thread client([&] {
        mesh::Mesh<mesh::Inproc, Caps1> client_mesh;
        client_mesh.add(transport.connect(endpoint), "client");
        client_sent = send_retrying(client_mesh, "client", to_payload("hello"));
        client_report = client_mesh.shutdown(5s);  // graceful: "hello" goes out first
        Envelope none;
        client_down = client_mesh.recv(none) == errc::shut_down;
    });

    mesh::Mesh<mesh::Inproc, Caps1> server_mesh;
    server_mesh.add(listener.accept(), "server");
    Envelope envelope;
    const auto received = server_mesh.recv_timeout(envelope, 5s);
    client.join();

    CHECK(client_sent.ok());
    CHECK(client_report.discarded_outgoing == 0);
    CHECK(client_down);
    REQUIRE_FALSE(received);
    CHECK(text(envelope.payload) == "hello");
    CHECK(envelope.id == "server");

    server_mesh.shutdown();
    CHECK(server_mesh.recv(envelope) == errc::shut_down);
}

TEST_CASE("5.1 #4 8 connections each way added and removed from two threads") {
    mesh::Inproc transport;
    auto listener = transport.listen("add-remove");
    mesh::Mesh<mesh::Inproc, Caps1> m;
    std::atomic<int> added{0};
    std::vector<std::uint64_t> thread_keys, main_keys;
    std::vector<mesh::InprocConnection> thread_removed;
    std::atomic<int> thread_failures{0};

    std::thread other([&, m2 = m]() mutable {
        for (int i = 0; i < 8; ++i) {
            std::error_code ec;
            thread_keys.push_back(m2.add(transport.connect(listener.endpoint()), "thread_" + std::to_string(i), ec));
            if (ec) ++thread_failures;
            ++added;
        }
        if (!wait_until([&] { return added.load() == 16; })) ++thread_failures;
        for (int i = 0; i < 8; ++i) {
            std::error_code ec;
            thread_removed.push_back(m2.remove("thread_" + std::to_string(i), ec));
            if (ec) ++thread_failures;
        }
    });
    for (int i = 0; i < 8; ++i) {
        main_keys.push_back(m.add(listener.accept(), "main_" + std::to_string(i)));
        ++added;
    }
    CHECK(wait_until([&] { return added.load() == 16; }));
    std::vector<mesh::InprocConnection> main_removed;
    for (int i = 0; i < 8; ++i) {
        std::error_code ec;
        main_removed.push_back(m.remove("main_" + std::to_string(i), ec));
        CHECK_FALSE(ec);
    }
    other.join();

    CHECK(thread_failures.load() == 0);
    std::set<std::uint64_t> keys(thread_keys.begin(), thread_keys.end());
    keys.insert(main_keys.begin(), main_keys.end());
    CHECK(keys.size() == 16);
    CHECK(keys.count(0) == 0);
    CHECK(thread_removed.size() == 8);
    CHECK(main_removed.size() == 8);
    CHECK(m.stats().connections == 0);
    m.shutdown();
    CHECK(m.is_shut_down());
}

TEST_CASE("5.1 #6 16 connections with both ends in one mesh: hello and world") {
    mesh::Inproc transport;
    auto listener = transport.listen("many");
    mesh::Mesh<mesh::Inproc, Caps16> m;
    for (int i = 0; i < 16; ++i) {
        m.add(transport.connect(listener.endpoint()), "thread_" + std::to_string(i));
        m.add(listener.accept(), "main_" + std::to_string(i));
    }

    std::vector<Envelope> thread_got;
    std::vector<mesh::SendResult> replies;
    std::thread other([&, m2 = m]() mutable {
        for (int i = 0; i < 16; ++i) {
            Envelope envelope;
            if (m2.recv_timeout(envelope, 5s)) break;
            thread_got.push_back(envelope);
        }
        for (const auto& envelope : thread_got) replies.push_back(send_retrying(m2, envelope.id, to_payload("world")));
    });
    for (int i = 0; i < 16; ++i) CHECK(send_retrying(m, "main_" + std::to_string(i), to_payload("hello")).ok());
    other.join();

    REQUIRE(thread_got.size() == 16);
    std::set<std::string> thread_ids;
    for (const auto& envelope : thread_got) {
        CHECK(text(envelope.payload) == "hello");
        CHECK(envelope.id.rfind("thread_", 0) == 0);
        thread_ids.insert(envelope.id);
    }
    CHECK(thread_ids.size() == 16);
    for (const auto& reply : replies) CHECK(reply.ok());

    std::set<std::string> main_ids;
    for (int i = 0; i < 16; ++i) {
        Envelope envelope;
        REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
        CHECK(text(envelope.payload) == "world");
        CHECK(envelope.id.rfind("main_", 0) == 0);
        main_ids.insert(envelope.id);
    }
    CHECK(main_ids.size() == 16);
    Envelope extra;
    CHECK(m.recv_timeout(extra, 20ms) == errc::timeout);  // and no shutdown marker
    m.shutdown();
}

TEST_CASE("ids() lists the registered connections, sorted, as add and remove change them") {
    mesh::Inproc transport;
    Mesh m;
    CHECK(m.ids().empty());
    std::vector<mesh::InprocConnection> far;
    for (const char* id : {"charlie", "alpha", "bravo"}) {
        auto pair = connected_pair(transport, std::string("inproc://ids-") + id);
        m.add(std::move(pair.server), id);
        far.push_back(std::move(pair.client));
    }
    CHECK(m.ids() == std::vector<std::string>{"alpha", "bravo", "charlie"});
    (void)m.remove("bravo");
    CHECK(m.ids() == std::vector<std::string>{"alpha", "charlie"});
    // An added connection that died stays registered until it is removed.
    far.front().disconnect();  // charlie's far end
    ConnectionEvent event;
    while (m.next_event(event, 5s) == std::error_code() &&
           !(event.id == "charlie" && event.kind == ConnectionEvent::Kind::disconnected)) {
    }
    CHECK(event.id == "charlie");
    CHECK(event.kind == ConnectionEvent::Kind::disconnected);
    CHECK(m.ids() == std::vector<std::string>{"alpha", "charlie"});
    m.shutdown();
    CHECK(m.ids().empty());
}

TEST_CASE("5.1 #8 shutdown: after an exchange, the next recv returns shut_down") {
    mesh::Inproc transport;
    auto listener = transport.listen("shutdown");
    mesh::Mesh<mesh::Inproc, Caps1> m;
    m.add(transport.connect(listener.endpoint()), "thread_1");
    m.add(listener.accept(), "main");

    REQUIRE(send_retrying(m, "main", to_payload("hello")).ok());
    Envelope thread_got;
    std::error_code thread_recv;
    mesh::SendResult thread_sent;
    std::thread other([&, m2 = m]() mutable {
        thread_recv = m2.recv_timeout(thread_got, 5s);
        if (!thread_recv) thread_sent = send_retrying(m2, "thread_1", to_payload("world"));
    });
    other.join();
    REQUIRE_FALSE(thread_recv);
    CHECK(text(thread_got.payload) == "hello");
    CHECK(thread_got.id == "thread_1");
    CHECK(thread_sent.ok());

    Envelope envelope;
    REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
    CHECK(text(envelope.payload) == "world");
    CHECK(envelope.id == "main");

    m.shutdown();
    CHECK(m.is_shut_down());
    CHECK(m.recv(envelope) == errc::shut_down);
    CHECK(m.recv_timeout(envelope, 1s) == errc::shut_down);
    CHECK(m.try_recv(envelope) == errc::shut_down);
}

// ---- add ----

TEST_CASE("add: a duplicate id is duplicate_id and the connection stays with the caller") {
    mesh::Inproc transport;
    Mesh m;
    auto first = connected_pair(transport, "dup-1");
    auto second = connected_pair(transport, "dup-2");
    std::error_code ec;
    const auto key = m.add(std::move(first.client), "a", ec);
    REQUIRE_FALSE(ec);
    CHECK(key != 0);

    CHECK(m.add(std::move(second.client), "a", ec) == 0);
    CHECK(ec == errc::duplicate_id);
    REQUIRE(second.client.is_open());
    CHECK_THROWS_AS(m.add(std::move(second.client), "a"), std::system_error);
    REQUIRE(second.client.is_open());
    try {
        m.add(std::move(second.client), "a");
    } catch (const std::system_error& e) {
        CHECK(e.code() == errc::duplicate_id);
    }

    // Still usable on its own, both ways.
    REQUIRE_FALSE(second.client.send(to_payload("still mine")));
    Payload got;
    REQUIRE_FALSE(second.server.recv_for(got, 5s));
    CHECK(text(got) == "still mine");
    REQUIRE_FALSE(second.server.send(to_payload("back")));
    REQUIRE_FALSE(second.client.recv_for(got, 5s));
    CHECK(text(got) == "back");

    // The original under "a" is unaffected.
    REQUIRE(m.send("a", to_payload("to first")).ok());
    REQUIRE_FALSE(first.server.recv_for(got, 5s));
    CHECK(text(got) == "to first");
}

TEST_CASE("add after shutdown is shut_down and the connection stays with the caller") {
    mesh::Inproc transport;
    Mesh m;
    m.shutdown();
    auto pair = connected_pair(transport, "late-add");
    std::error_code ec;
    CHECK(m.add(std::move(pair.client), "a", ec) == 0);
    CHECK(ec == errc::shut_down);
    REQUIRE(pair.client.is_open());
    CHECK_THROWS_AS(m.add(std::move(pair.client), "a"), std::system_error);
    REQUIRE(pair.client.is_open());
    REQUIRE_FALSE(pair.client.send(Payload{1}));
    Payload got;
    CHECK_FALSE(pair.server.recv_for(got, 5s));
}

TEST_CASE("add of a connection that is not connected is not_connected") {
    mesh::Inproc transport;
    Mesh m;
    std::error_code ec;
    CHECK(m.add(mesh::InprocConnection(), "empty", ec) == 0);
    CHECK(ec == errc::not_connected);
    auto failed = transport.connect("inproc://nobody", ec);
    REQUIRE(ec == errc::connection_refused);
    m.add(std::move(failed), "failed", ec);
    CHECK(ec == errc::not_connected);
    CHECK_THROWS_AS(m.add(mesh::InprocConnection(), "empty"), std::system_error);
    CHECK(m.send("empty", Payload{1}).error == errc::not_found);
    CHECK(m.stats().connections == 0);

    // The mesh is unharmed.
    auto pair = connected_pair(transport, "after-not-connected");
    m.add(std::move(pair.client), "empty");
    REQUIRE(m.send("empty", to_payload("fine")).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "fine");
}

TEST_CASE("add returns internal ids that are never reused") {
    mesh::Inproc transport;
    Mesh m;
    auto p1 = connected_pair(transport, "keys-1");
    auto p2 = connected_pair(transport, "keys-2");
    const auto k1 = m.add(std::move(p1.client), "a");
    auto back = m.remove("a");
    const auto k2 = m.add(std::move(back), "a");
    const auto k3 = m.add(std::move(p2.client), "b");
    CHECK(k1 != k2);
    CHECK(k2 != k3);
    CHECK(k1 != k3);
}

// ---- remove ----

TEST_CASE("remove: an unknown id is not_found, and so is a second remove") {
    mesh::Inproc transport;
    Mesh m;
    std::error_code ec;
    (void)m.remove("nobody", ec);
    CHECK(ec == errc::not_found);
    CHECK_THROWS_AS((void)m.remove("nobody"), std::system_error);

    auto pair = connected_pair(transport, "remove-twice");
    m.add(std::move(pair.client), "a");
    auto first = m.remove("a", ec);
    CHECK_FALSE(ec);
    CHECK(first.is_open());
    auto second = m.remove("a", ec);
    CHECK(ec == errc::not_found);
    CHECK_FALSE(second.is_open());
    CHECK(m.send("a", Payload{1}).error == errc::not_found);
}

TEST_CASE("remove hands back a connection usable on its own, and reports no disconnect") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "remove-usable");
    m.add(std::move(pair.client), "a");

    REQUIRE(m.send("a", to_payload("via mesh")).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "via mesh");
    REQUIRE_FALSE(pair.server.send(to_payload("to mesh")));
    Envelope envelope;
    REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
    CHECK(text(envelope.payload) == "to mesh");

    auto connection = m.remove("a");
    REQUIRE(connection.is_open());
    REQUIRE_FALSE(connection.send(to_payload("standalone")));
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "standalone");
    REQUIRE_FALSE(pair.server.send(to_payload("reply")));
    REQUIRE_FALSE(connection.recv_for(got, 5s));
    CHECK(text(got) == "reply");

    // The mesh no longer owns it: neither the removal nor a later close is an event.
    connection.disconnect();
    ConnectionEvent event;
    CHECK(m.next_event(event, 100ms) == errc::timeout);
    CHECK(m.try_recv(envelope) == errc::would_block);
}

TEST_CASE("a connection whose peer went away can still be removed") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "remove-dead");
    m.add(std::move(pair.client), "a");
    pair.server.disconnect();
    ConnectionEvent event;
    REQUIRE_FALSE(m.next_event(event, 5s));
    CHECK(event.id == "a");

    std::error_code ec;
    auto connection = m.remove("a", ec);
    CHECK_FALSE(ec);
    Payload got;
    const auto result = connection.recv_for(got, 1s);
    CHECK(result);
    CHECK(result != errc::timeout);
    (void)m.remove("a", ec);
    CHECK(ec == errc::not_found);
}

TEST_CASE("accept_from over inproc: waiting and later connections are added by the id rule, until shutdown") {
    mesh::Inproc transport;
    Mesh m;
    auto listener = transport.listen("accepting");
    auto early = transport.connect("inproc://accepting");  // in the backlog before accept_from
    // Every inproc connection's remote endpoint is the listener's name: the rule numbers them.
    int next = 0;
    m.accept_from(std::move(listener), [&next](const mesh::InprocConnection&) { return "peer-" + std::to_string(next++); });
    auto late = transport.connect("inproc://accepting");

    std::set<std::string> connected;
    for (int i = 0; i < 2; ++i) {
        ConnectionEvent event;
        REQUIRE_FALSE(m.next_event(event, 5s));
        CHECK(event.kind == ConnectionEvent::Kind::connected);
        connected.insert(event.id);
    }
    CHECK(connected == std::set<std::string>{"peer-0", "peer-1"});

    REQUIRE_FALSE(early.send(to_payload("early")));
    REQUIRE_FALSE(late.send(to_payload("late")));
    std::set<std::string> received;
    for (int i = 0; i < 2; ++i) {
        Envelope envelope;
        REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
        received.insert(envelope.id + ":" + text(envelope.payload));
        CHECK(m.send(envelope.id, to_payload("back")).ok());
    }
    CHECK(received.size() == 2);
    Payload got;
    REQUIRE_FALSE(early.recv_for(got, 5s));
    CHECK(text(got) == "back");
    REQUIRE_FALSE(late.recv_for(got, 5s));
    CHECK(text(got) == "back");

    m.shutdown();  // closes the listener and frees its name
    std::error_code ec;
    transport.connect("inproc://accepting", ec);
    CHECK(ec == errc::connection_refused);
}

// ---- send ----

TEST_CASE("send to an unknown id is not_found with the envelope untouched") {
    Mesh m;
    Envelope envelope("nobody", to_payload("lost?"));
    const auto copy = envelope;
    const auto result = m.send(std::move(envelope));
    CHECK(result.error == errc::not_found);
    CHECK_FALSE(result.ok());
    CHECK(envelope == copy);
}

TEST_CASE("send of an oversize payload is message_too_large with the envelope untouched") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, SmallMessages> m;
    auto pair = connected_pair(transport, "oversize");
    m.add(std::move(pair.client), "a");

    Envelope envelope("a", Payload(SmallMessages::max_message_size + 1, 5));
    const auto copy = envelope;
    const auto result = m.send(std::move(envelope));
    CHECK(result.error == errc::message_too_large);
    CHECK(result.error == std::errc::message_size);
    CHECK(envelope == copy);

    auto sender = m.connection_sender("a");
    Payload big(SmallMessages::max_message_size + 1, 6);
    CHECK(sender.send(std::move(big)).error == errc::message_too_large);
    CHECK(big.size() == SmallMessages::max_message_size + 1);

    // Nothing was queued; the largest allowed size goes through.
    REQUIRE(m.send("a", Payload(SmallMessages::max_message_size, 7)).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(got == Payload(SmallMessages::max_message_size, 7));
    CHECK(m.stats("a").messages_out == 1);
}

TEST_CASE("a transport limit below the mesh's applies too, with the envelope untouched") {
    mesh::Inproc transport(16);
    Mesh m;
    auto pair = connected_pair(transport, "transport-limit");
    m.add(std::move(pair.client), "a");
    Envelope envelope("a", Payload(17, 1));
    const auto copy = envelope;
    CHECK(m.send(std::move(envelope)).error == errc::message_too_large);
    CHECK(envelope == copy);
    REQUIRE(m.send("a", Payload(16, 2)).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(got == Payload(16, 2));
    CHECK(pair.server.recv_for(got, 10ms) == errc::timeout);
}

TEST_CASE("queue_full hands the envelope back untouched, and sending resumes when the peer reads") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Outgoing4> m;
    auto pair = connected_pair(transport, "full");
    m.add(std::move(pair.client), "a");

    std::size_t rejected = 0;
    const std::size_t accepted = fill_until_full(m, "a", rejected);
    // Bounded end to end: the outgoing queue plus the pipe behind it, no more.
    CHECK(accepted >= Outgoing4::outgoing_capacity);
    CHECK(accepted <= pipe_capacity + Outgoing4::outgoing_capacity);
    CHECK(rejected >= 1);
    CHECK(settled(m, "a"));

    Envelope envelope("a", numbered(static_cast<std::uint32_t>(accepted), 100));
    const auto copy = envelope;
    const auto result = m.send(std::move(envelope));
    CHECK(result.error == errc::queue_full);
    CHECK(result.error == std::errc::resource_unavailable_try_again);
    CHECK(envelope == copy);
    CHECK(m.stats("a").rejected_full == rejected + 1);
    CHECK(m.stats("a").queue_depth == Outgoing4::outgoing_capacity);

    // One read makes room all the way back to the sender.
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(number_of(got) == 0);
    CHECK(wait_until([&] { return m.send(std::move(envelope)).ok(); }, 5s));

    for (std::uint32_t i = 1; i <= accepted; ++i) {
        REQUIRE_FALSE(pair.server.recv_for(got, 5s));
        REQUIRE(number_of(got) == i);
    }
    CHECK(got.size() == 100);
    CHECK(pair.server.recv_for(got, 10ms) == errc::timeout);
}

TEST_CASE("send after the peer disconnected is disconnected, reason end_of_stream, envelope untouched") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "send-dead");
    m.add(std::move(pair.client), "a");
    auto sender = m.connection_sender("a");
    pair.server.disconnect();
    ConnectionEvent event;
    REQUIRE_FALSE(m.next_event(event, 5s));

    Envelope envelope("a", to_payload("too late"));
    const auto copy = envelope;
    const auto result = m.send(std::move(envelope));
    CHECK(result.error == errc::disconnected);
    CHECK(result.reason == errc::end_of_stream);
    CHECK(envelope == copy);

    Payload payload = to_payload("also too late");
    const auto direct = sender.send(std::move(payload));
    CHECK(direct.error == errc::disconnected);
    CHECK(direct.reason == errc::end_of_stream);
    CHECK(text(payload) == "also too late");
}

TEST_CASE("send after shutdown is shut_down with the envelope untouched") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "send-after-shutdown");
    m.add(std::move(pair.client), "a");
    auto sender = m.connection_sender("a");
    m.shutdown();

    Envelope envelope("a", to_payload("after"));
    const auto copy = envelope;
    CHECK(m.send(std::move(envelope)).error == errc::shut_down);
    CHECK(envelope == copy);
    CHECK(m.send("unknown", Payload{1}).error == errc::shut_down);
    Payload payload{1, 2};
    CHECK(sender.send(std::move(payload)).error == errc::shut_down);
    CHECK(payload == Payload{1, 2});
}

// ---- recv ----

TEST_CASE("recv_timeout times out - try_recv on an empty queue is would_block") {
    Mesh m;
    Envelope envelope;
    const auto start = std::chrono::steady_clock::now();
    CHECK(m.recv_timeout(envelope, 30ms) == errc::timeout);
    CHECK(std::chrono::steady_clock::now() - start >= 30ms);
    CHECK(m.try_recv(envelope) == errc::would_block);
    ConnectionEvent event;
    CHECK(m.try_event(event) == errc::timeout);
    CHECK(m.next_event(event, 10ms) == errc::timeout);
}

TEST_CASE("try_recv returns what has arrived") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "try-recv");
    m.add(std::move(pair.client), "a");
    REQUIRE_FALSE(pair.server.send(to_payload("x")));
    Envelope envelope;
    std::error_code ec;
    REQUIRE(wait_until([&] { return (ec = m.try_recv(envelope)) != errc::would_block; }, 5s));
    REQUIRE_FALSE(ec);
    CHECK(envelope == Envelope("a", to_payload("x")));
}

TEST_CASE("a moved-from Mesh reports shut_down") {
    mesh::Inproc transport;
    Mesh m;
    Mesh other = std::move(m);
    CHECK(m.is_shut_down());  // NOLINT(bugprone-use-after-move): the point of the test
    CHECK_FALSE(other.is_shut_down());

    auto pair = connected_pair(transport, "moved");
    std::error_code ec;
    m.add(std::move(pair.client), "a", ec);
    CHECK(ec == errc::shut_down);
    CHECK(pair.client.is_open());
    (void)m.remove("a", ec);
    CHECK(ec == errc::shut_down);
    CHECK(m.send("a", Payload{1}).error == errc::shut_down);
    m.connection_sender("a", ec);
    CHECK(ec == errc::shut_down);
    Envelope envelope;
    CHECK(m.recv(envelope) == errc::shut_down);
    CHECK(m.recv_timeout(envelope, 1s) == errc::shut_down);
    CHECK(m.try_recv(envelope) == errc::shut_down);
    ConnectionEvent event;
    CHECK(m.next_event(event, 1s) == errc::shut_down);
    m.stats("a", ec);
    CHECK(ec == errc::shut_down);
    CHECK(m.stats().connections == 0);
    const auto report = m.shutdown();
    CHECK(report.discarded_outgoing == 0);

    // The mesh it was moved into works.
    other.add(std::move(pair.client), "a");
    CHECK(other.send("a", to_payload("ok")).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "ok");
}

TEST_CASE("connection_sender sends without a lookup and reports not_found after remove") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "connection-sender");
    m.add(std::move(pair.client), "a");
    auto sender = m.connection_sender("a");
    CHECK(sender.id() == "a");
    for (std::uint32_t i = 0; i < 3; ++i) REQUIRE(sender.send(numbered(i)).ok());
    Payload got;
    for (std::uint32_t i = 0; i < 3; ++i) {
        REQUIRE_FALSE(pair.server.recv_for(got, 5s));
        CHECK(number_of(got) == i);
    }

    auto connection = m.remove("a");
    Payload payload = to_payload("after remove");
    CHECK(sender.send(std::move(payload)).error == errc::not_found);
    CHECK(text(payload) == "after remove");

    std::error_code ec;
    m.connection_sender("a", ec);
    CHECK(ec == errc::not_found);
    CHECK_THROWS_AS(m.connection_sender("a"), std::system_error);
    Mesh::ConnectionSender empty;
    CHECK(empty.send(Payload{1}).error == errc::not_found);
    CHECK(empty.id().empty());

    // Re-added under the same id, the old sender stays bound to the old registration.
    m.add(std::move(connection), "a");
    CHECK(sender.send(Payload{1}).error == errc::not_found);
    CHECK(m.connection_sender("a").send(to_payload("new")).ok());
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "new");

    m.shutdown();
    m.connection_sender("a", ec);
    CHECK(ec == errc::shut_down);
}

TEST_CASE("a bound sender of a connection that died reports not_found once it is removed, shut_down after shutdown") {
    mesh::Inproc transport;
    Mesh m;
    auto a = connected_pair(transport, "bound-dead-a");
    auto b = connected_pair(transport, "bound-dead-b");
    m.add(std::move(a.client), "a");
    m.add(std::move(b.client), "b");
    auto to_a = m.connection_sender("a");
    auto to_b = m.connection_sender("b");
    a.server.disconnect();
    b.server.disconnect();
    REQUIRE(wait_until([&] { return to_a.send(Payload{1}).error == errc::disconnected; }, 5s));
    REQUIRE(wait_until([&] { return to_b.send(Payload{1}).error == errc::disconnected; }, 5s));
    CHECK(to_a.send(Payload{1}).reason == errc::end_of_stream);

    (void)m.remove("a");
    const auto removed = to_a.send(Payload{1});
    CHECK(removed.error == errc::not_found);
    CHECK_FALSE(removed.reason);
    CHECK(m.send("a", Payload{1}).error == errc::not_found);

    m.shutdown();
    CHECK(to_b.send(Payload{1}).error == errc::shut_down);
    CHECK(m.send("b", Payload{1}).error == errc::shut_down);
}

TEST_CASE("a connection_sender outliving every copy of its mesh reports shut_down") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "outlive");
    Mesh::ConnectionSender sender;
    {
        Mesh m;
        m.add(std::move(pair.client), "a");
        sender = m.connection_sender("a");
        REQUIRE(sender.send(to_payload("before")).ok());
        Payload got;
        REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    }
    Payload payload = to_payload("after");
    CHECK(sender.send(std::move(payload)).error == errc::shut_down);
    CHECK(text(payload) == "after");
    Payload got;
    CHECK(pair.server.recv_for(got, 5s) == errc::end_of_stream);
}

TEST_CASE("received envelopes carry their connection's id, even after it was removed") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "id-after-remove");
    m.add(std::move(pair.client), "a");
    for (std::uint32_t i = 0; i < 3; ++i) REQUIRE_FALSE(pair.server.send(numbered(i)));
    // All three are in the mesh's incoming queue before the removal.
    REQUIRE(wait_until([&] { return m.stats("a").messages_in == 3; }, 5s));
    (void)m.remove("a");

    for (std::uint32_t i = 0; i < 3; ++i) {
        Envelope envelope;
        REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
        CHECK(envelope.id == "a");
        CHECK(number_of(envelope.payload) == i);
    }
}

TEST_CASE("per-connection FIFO order over 10,000 messages, both directions at once") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "fifo");
    m.add(std::move(pair.client), "a");
    constexpr std::uint32_t count = 10000;

    std::uint32_t peer_received = 0;
    std::thread peer_reader([&] {
        Payload got;
        while (peer_received < count && !pair.server.recv_for(got, 5s) && number_of(got) == peer_received)
            ++peer_received;
    });
    std::thread peer_writer([&] {
        for (std::uint32_t i = 0; i < count; ++i)
            if (pair.server.send(numbered(i))) return;
    });

    std::uint32_t sent = 0;
    for (; sent < count; ++sent)
        if (!send_retrying(m, "a", numbered(sent)).ok()) break;
    std::uint32_t received = 0;
    for (; received < count; ++received) {
        Envelope envelope;
        if (m.recv_timeout(envelope, 5s) || envelope.id != "a" || number_of(envelope.payload) != received) break;
    }
    peer_writer.join();
    peer_reader.join();
    CHECK(sent == count);
    CHECK(peer_received == count);
    CHECK(received == count);
}

// ---- events ----

TEST_CASE("a peer going away produces exactly one disconnected event, after its messages") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "event");
    m.add(std::move(pair.client), "a");
    for (std::uint32_t i = 0; i < 3; ++i) REQUIRE_FALSE(pair.server.send(numbered(i)));

    SUBCASE("the peer disconnects") { pair.server.disconnect(); }
    SUBCASE("the peer is destroyed") { auto gone = std::move(pair.server); }

    // What it sent before it went is still delivered.
    for (std::uint32_t i = 0; i < 3; ++i) {
        Envelope envelope;
        REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
        CHECK(envelope.id == "a");
        CHECK(number_of(envelope.payload) == i);
    }
    ConnectionEvent event;
    REQUIRE_FALSE(m.next_event(event, 5s));
    CHECK(event.kind == ConnectionEvent::Kind::disconnected);
    CHECK(event.id == "a");
    CHECK(event.reason == errc::end_of_stream);
    CHECK(event.discarded == 0);
    CHECK(m.next_event(event, 200ms) == errc::timeout);

    // Removing it afterwards is no second event either.
    (void)m.remove("a");
    CHECK(m.next_event(event, 50ms) == errc::timeout);
}

TEST_CASE("a peer leaving while messages wait for it: one event, reason end_of_stream, queued ones discarded") {
    mesh::Inproc transport;
    // The write side and the read side both notice; the reason must not depend on which is first.
    for (int round = 0; round < 10; ++round) {
        CAPTURE(round);
        mesh::Mesh<mesh::Inproc, Outgoing4> m;
        auto pair = connected_pair(transport, "leave-with-queue");
        m.add(std::move(pair.client), "a");
        std::size_t rejected = 0;
        const std::size_t accepted = fill_until_full(m, "a", rejected, 5ms);
        REQUIRE(settled(m, "a"));
        const std::size_t waiting = accepted - m.stats("a").messages_out;  // not yet written
        pair.server.disconnect();

        ConnectionEvent event;
        REQUIRE_FALSE(m.next_event(event, 5s));
        CHECK(event.id == "a");
        CHECK(event.reason == errc::end_of_stream);
        CHECK(event.discarded == waiting);
        const auto result = m.send("a", Payload{1});
        CHECK(result.error == errc::disconnected);
        CHECK(result.reason == errc::end_of_stream);
        CHECK(m.stats("a").discarded == waiting);
        CHECK(m.stats("a").messages_out + waiting == accepted);
        CHECK(m.next_event(event, 20ms) == errc::timeout);
    }
}

TEST_CASE("events are handed out after shutdown, then shut_down") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "event-after-shutdown");
    m.add(std::move(pair.client), "a");
    pair.server.disconnect();
    REQUIRE(wait_until([&] { return m.send("a", Payload{1}).error == errc::disconnected; }, 5s));
    m.shutdown();
    ConnectionEvent event;
    REQUIRE_FALSE(m.next_event(event, 1s));
    CHECK(event.id == "a");
    CHECK(m.next_event(event, 1s) == errc::shut_down);
}

// ---- statistics ----

TEST_CASE("statistics per connection and in total") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Outgoing4> m;
    auto a = connected_pair(transport, "stats-a");
    auto c = connected_pair(transport, "stats-c");
    m.add(std::move(a.client), "a");
    m.add(std::move(c.client), "c");

    // "a": 3 messages (6 bytes) out, 2 messages (9 bytes) in.
    for (std::size_t size = 1; size <= 3; ++size) REQUIRE(m.send("a", Payload(size, 1)).ok());
    Payload got;
    for (int i = 0; i < 3; ++i) REQUIRE_FALSE(a.server.recv_for(got, 5s));
    REQUIRE_FALSE(a.server.send(Payload(4, 2)));
    REQUIRE_FALSE(a.server.send(Payload(5, 2)));
    for (int i = 0; i < 2; ++i) {
        Envelope envelope;
        REQUIRE_FALSE(m.recv_timeout(envelope, 5s));
    }
    CHECK(wait_until([&] {
        const auto s = m.stats("a");
        return s.messages_out == 3 && s.bytes_out == 6 && s.messages_in == 2 && s.bytes_in == 9;
    }, 5s));
    {
        const auto s = m.stats("a");
        CHECK(s.messages_out == 3);
        CHECK(s.bytes_out == 6);
        CHECK(s.messages_in == 2);
        CHECK(s.bytes_in == 9);
        CHECK(s.rejected_full == 0);
        CHECK(s.queue_depth == 0);
        CHECK(s.connections == 1);
    }

    // "c": its peer does not read, so its queue fills and sends are refused.
    std::size_t rejected = 0;
    const std::size_t accepted = fill_until_full(m, "c", rejected);
    CHECK(accepted >= Outgoing4::outgoing_capacity);
    REQUIRE(settled(m, "c"));
    const auto c_stats = m.stats("c");
    {
        const auto& s = c_stats;
        CHECK(s.messages_out <= accepted);
        CHECK(s.bytes_out == 4 * s.messages_out);
        CHECK(s.rejected_full == rejected);
        CHECK(s.rejected_full >= 1);
        CHECK(s.queue_depth == Outgoing4::outgoing_capacity);  // the peer reads nothing
        CHECK(s.messages_in == 0);
        CHECK(s.discarded == 0);
    }
    {
        const auto total = m.stats();
        CHECK(total.connections == 2);
        CHECK(total.messages_out == 3 + c_stats.messages_out);
        CHECK(total.bytes_out == 6 + c_stats.bytes_out);
        CHECK(total.messages_in == 2);
        CHECK(total.bytes_in == 9);
        CHECK(total.rejected_full == rejected);
        CHECK(total.queue_depth == c_stats.queue_depth);
        CHECK(total.protocol_errors == 0);
    }

    // Once the peer has read everything, nothing waits and everything was written.
    Payload drained;
    for (std::size_t i = 0; i < accepted; ++i) REQUIRE_FALSE(c.server.recv_for(drained, 5s));
    CHECK(wait_until([&] {
        const auto s = m.stats("c");
        return s.queue_depth == 0 && s.messages_out == accepted;
    }, 5s));
    CHECK(m.stats().queue_depth == 0);

    // A removed connection still counts in the totals.
    (void)m.remove("a");
    {
        const auto total = m.stats();
        CHECK(total.connections == 1);
        CHECK(total.messages_out == 3 + accepted);
        CHECK(total.messages_in == 2);
        CHECK(total.bytes_in == 9);
    }
    std::error_code ec;
    m.stats("a", ec);
    CHECK(ec == errc::not_found);
    CHECK_THROWS_AS(m.stats("a"), std::system_error);
}

// ---- shutdown ----

TEST_CASE("graceful shutdown delivers queued messages to a live peer") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "flush-live");
    m.add(std::move(pair.client), "a");
    // As much as fits, so part of it may still wait in the outgoing queue.
    std::size_t rejected = 0;
    const std::size_t count = fill_until_full(m, "a", rejected, 5ms);
    REQUIRE(count >= pipe_capacity);

    std::size_t received = 0;
    std::error_code end;
    std::thread peer([&] {
        // Starts reading only once the shutdown has begun.
        wait_until([&] { return m.is_shut_down(); }, 5s);
        Payload got;
        while (!(end = pair.server.recv_for(got, 5s))) {
            if (number_of(got) != received) break;
            ++received;
        }
    });
    const auto report = m.shutdown(5s);
    peer.join();
    CHECK(report.discarded_outgoing == 0);
    CHECK(received == count);
    CHECK(end == errc::end_of_stream);
}

TEST_CASE("shutdown reports the messages it discarded when the peer does not read") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Outgoing4> m;
    auto pair = connected_pair(transport, "flush-stuck");
    m.add(std::move(pair.client), "a");
    std::size_t rejected = 0;
    const std::size_t sent = fill_until_full(m, "a", rejected, 5ms);
    REQUIRE(settled(m, "a"));
    const std::size_t waiting = sent - m.stats("a").messages_out;  // not yet written

    mesh::ShutdownReport report;
    SUBCASE("with a flush deadline") {
        const auto start = std::chrono::steady_clock::now();
        report = m.shutdown(100ms);
        CHECK(std::chrono::steady_clock::now() - start < 5s);
    }
    SUBCASE("without one") { report = m.shutdown(); }

    std::size_t delivered = 0;
    Payload got;
    std::error_code ec;
    while (!(ec = pair.server.recv_for(got, 5s))) {
        CHECK(number_of(got) == delivered);
        ++delivered;
    }
    CHECK(ec == errc::end_of_stream);
    CHECK(report.discarded_outgoing + delivered == sent);
    CHECK(report.discarded_outgoing == waiting);
    CHECK(report.discarded_incoming == 0);

    // A second shutdown has nothing more to report.
    const auto again = m.shutdown();
    CHECK(again.discarded_outgoing == 0);
}

TEST_CASE("a graceful shutdown ends early when the peer it waits for goes away, and still counts") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Outgoing4> m;
    auto pair = connected_pair(transport, "flush-peer-leaves");
    m.add(std::move(pair.client), "a");
    std::size_t rejected = 0;
    const std::size_t sent = fill_until_full(m, "a", rejected, 5ms);
    REQUIRE(settled(m, "a"));
    const std::size_t waiting = sent - m.stats("a").messages_out;  // not yet written

    std::thread peer([&] {
        wait_until([&] { return m.is_shut_down(); }, 5s);
        pair.server.disconnect();  // without reading anything
    });
    const auto start = std::chrono::steady_clock::now();
    const auto report = m.shutdown(30s);
    const auto took = std::chrono::steady_clock::now() - start;
    peer.join();
    CHECK(took < 5s);
    // The pipe's messages were written (the peer dropped them); the queued ones were not.
    CHECK(report.discarded_outgoing == waiting);
}

TEST_CASE("shutdown counts received messages nobody took") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "discard-incoming");
    m.add(std::move(pair.client), "a");
    for (std::uint32_t i = 0; i < 5; ++i) REQUIRE_FALSE(pair.server.send(numbered(i)));
    REQUIRE(wait_until([&] { return m.stats("a").messages_in == 5; }, 5s));
    const auto report = m.shutdown();
    CHECK(report.discarded_incoming == 5);
    CHECK(report.discarded_outgoing == 0);
}

TEST_CASE("destroying the last copy shuts the mesh down and closes its connections") {
    mesh::Inproc transport;
    auto pair = connected_pair(transport, "last-copy");
    {
        Mesh m;
        Mesh copy = m;
        m.add(std::move(pair.client), "a");
        REQUIRE(copy.send("a", to_payload("bye")).ok());
        Payload got;
        REQUIRE_FALSE(pair.server.recv_for(got, 5s));
        CHECK(text(got) == "bye");
        { Mesh dropped = std::move(m); }
        // One copy is left: still running.
        CHECK_FALSE(copy.is_shut_down());
        CHECK(copy.send("a", to_payload("still here")).ok());
        REQUIRE_FALSE(pair.server.recv_for(got, 5s));
        CHECK(text(got) == "still here");
    }
    Payload got;
    CHECK(pair.server.recv_for(got, 5s) == errc::end_of_stream);
}

TEST_CASE("every call after shutdown returns shut_down") {
    mesh::Inproc transport;
    Mesh m;
    auto pair = connected_pair(transport, "after-shutdown");
    m.add(std::move(pair.client), "a");
    Mesh copy = m;
    copy.shutdown();
    CHECK(m.is_shut_down());
    std::error_code ec;
    (void)m.remove("a", ec);
    CHECK(ec == errc::shut_down);
    (void)m.remove("nobody", ec);
    CHECK(ec == errc::shut_down);
    CHECK(m.send("a", Payload{1}).error == errc::shut_down);
    Envelope envelope;
    CHECK(m.try_recv(envelope) == errc::shut_down);
    CHECK(m.recv_timeout(envelope, 1s) == errc::shut_down);
    ConnectionEvent event;
    CHECK(m.next_event(event, 1s) == errc::shut_down);
    Payload got;
    CHECK(pair.server.recv_for(got, 5s) == errc::end_of_stream);
}

// ---- capability handles ----

TEST_CASE("LifeCycle, Sender and Receiver handles") {
    mesh::Inproc transport;
    Mesh m;
    auto life = m.get_life_cycle();
    auto sender = m.get_sender();
    auto receiver = m.get_receiver();
    auto pair = connected_pair(transport, "handles");

    life.add(std::move(pair.client), "a");
    std::error_code ec;
    auto other = connected_pair(transport, "handles-2");
    life.add(std::move(other.client), "a", ec);
    CHECK(ec == errc::duplicate_id);
    CHECK(other.client.is_open());

    REQUIRE(sender.send("a", to_payload("out")).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "out");

    REQUIRE_FALSE(pair.server.send(to_payload("in")));
    Envelope envelope;
    REQUIRE_FALSE(receiver.recv_timeout(envelope, 5s));
    CHECK(envelope == Envelope("a", to_payload("in")));
    CHECK(receiver.try_recv(envelope) == errc::would_block);
    REQUIRE_FALSE(pair.server.send(to_payload("in 2")));
    REQUIRE_FALSE(receiver.recv(envelope));
    CHECK(text(envelope.payload) == "in 2");

    auto connection = life.remove("a");
    CHECK(connection.is_open());
    CHECK(sender.send("a", Payload{1}).error == errc::not_found);
    (void)life.remove("a", ec);
    CHECK(ec == errc::not_found);

    // The handles keep the mesh running after the original is gone.
    { Mesh gone = std::move(m); }
    life.add(std::move(connection), "b");
    CHECK(sender.send("b", to_payload("still")).ok());
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    CHECK(text(got) == "still");
}

} // TEST_SUITE
