// A connection's life on the reactor: how it ends, what that frees and reports,
// and the calls that may come from the reactor thread itself.
#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/process_stats.hpp"
#include "support/raw_peer.hpp"
#include "support/sanitizers.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <sys/resource.h>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using mesh_test::Bytes;
using mesh_test::open_descriptors;

using mesh_test::Outgoing64;
using mesh_test::resident_size_is_meaningful;
namespace {

using TcpMesh = mesh::Mesh<mesh::Tcp>;

// A gate that a test opens once: threads that reach it wait there until then.
class Latch {
public:
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return open_; });
    }
    void open() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

// Runs `body` on its own thread; false when it has not finished within `timeout`
// (the thread is then left behind: the process is about to fail anyway).
template <class Body>
bool finishes_within(std::chrono::milliseconds timeout, Body body) {
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    std::thread([done, body]() mutable {
        body();
        done->set_value();
    }).detach();
    return future.wait_for(timeout) == std::future_status::ready;
}

// A connection type of the smallest kind a ConnectionState accepts: it sends
// directly, and a test can hold a sender inside try_send_direct.
struct HeldConnection {
    Latch* release = nullptr;
    std::atomic<bool>* inside = nullptr;
    std::error_code try_send_direct(mesh::Payload&, std::size_t) {
        inside->store(true);
        release->wait();
        return {};
    }
    std::size_t direct_queue_depth() const noexcept { return 0; }
    static constexpr bool sends_directly() noexcept { return true; }
};

// A value whose move blocks until a latch opens: a producer holding it is stuck
// between claiming a ring cell and filling it.
struct SlowValue {
    static inline Latch* gate = nullptr;
    int value = 0;
    SlowValue() = default;
    explicit SlowValue(int v) : value(v) {}
    SlowValue(SlowValue&& other) noexcept : value(other.value) {
        if (gate && other.value < 0) gate->wait();
    }
    SlowValue& operator=(SlowValue&& other) noexcept {
        if (gate && other.value < 0) gate->wait();
        value = other.value;
        return *this;
    }
};

// Sanitized builds run the long loops shorter.
#if MESH_TEST_ASAN || MESH_TEST_TSAN
constexpr int add_remove_cycles = 20000;
constexpr std::uint32_t park_race_messages = 50000;
#else
constexpr int add_remove_cycles = 50000;
constexpr std::uint32_t park_race_messages = 200000;
#endif

struct SmallRing : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 8;
};
struct FewEvents : mesh::DefaultConfig {
    static constexpr std::size_t event_capacity = 4;
};

} // namespace

TEST_SUITE("lifecycle") {

TEST_CASE("the gate closes at once while a sender is inside - the last sender out reports") {
    Latch release;
    std::atomic<bool> inside{false};
    HeldConnection connection{&release, &inside};
    mesh::detail::ConnectionState<HeldConnection, mesh::DefaultConfig> state("c", 1, std::move(connection), false);
    mesh::detail::SendNotice notice;
    mesh::SendResult result;
    std::thread sender([&] {
        mesh::Payload payload = mesh::to_payload("x");
        result = state.try_send(payload, notice);
    });
    REQUIRE(mesh_test::spin_until([&] { return inside.load(); }));
    // Returns at once: the ring is not final yet, and the reactor is told later.
    CHECK_FALSE(state.close_for_send(mesh::errc::disconnected, mesh::errc::end_of_stream));
    release.open();
    sender.join();
    CHECK(result.ok());
    CHECK(notice.senders_left);
    // A sender arriving after the close is refused and has nothing to report.
    mesh::detail::SendNotice late;
    mesh::Payload payload = mesh::to_payload("y");
    const auto refused = state.try_send(payload, late);
    CHECK(refused.error == mesh::errc::disconnected);
    CHECK(refused.reason == mesh::errc::end_of_stream);
    CHECK_FALSE(late.senders_left);
}

TEST_CASE("the gate closes at once when nobody is inside") {
    Latch release;
    std::atomic<bool> inside{false};
    mesh::detail::ConnectionState<HeldConnection, mesh::DefaultConfig> state("c", 1, HeldConnection{&release, &inside},
                                                                             false);
    CHECK(state.close_for_send(mesh::errc::shut_down, {}));
    mesh::detail::SendNotice notice;
    mesh::Payload payload = mesh::to_payload("x");
    CHECK(state.try_send(payload, notice).error == mesh::errc::shut_down);
    CHECK_FALSE(notice.senders_left);
}

TEST_CASE("a ring cell claimed but not yet filled is not ready, so nobody waits on it by spinning") {
    Latch gate;
    SlowValue::gate = &gate;
    mesh::detail::Ring<SlowValue, 8, false, true> ring;
    std::thread producer([&] {
        SlowValue v(-1);
        ring.try_push(v);
    });
    REQUIRE(mesh_test::spin_until([&] { return ring.size() == 1; }));
    CHECK_FALSE(ring.front_ready());  // claimed, not filled
    SlowValue out;
    CHECK_FALSE(ring.try_pop(out));
    gate.open();
    producer.join();
    CHECK(ring.front_ready());
    REQUIRE(ring.try_pop(out));
    CHECK(out.value == -1);
    CHECK_FALSE(ring.front_ready());
    SlowValue::gate = nullptr;
}

TEST_CASE("parking an idle ring never destroys a message a sender just queued") {
    // The reactor's park sweep and a sender race on the ring's storage; every
    // message accepted must still be taken by the writer.
    struct NoConnection {};
    mesh::detail::ConnectionState<NoConnection, SmallRing> state("c", 1, NoConnection{}, false);
    constexpr std::uint32_t total = park_race_messages;
    std::atomic<bool> done{false};
    std::size_t accepted = 0;
    std::thread sender([&] {
        for (std::uint32_t i = 0; i < total; ++i) {
            mesh::Payload payload = mesh_test::numbered(i);
            mesh::detail::SendNotice notice;
            if (state.try_send(payload, notice).ok()) ++accepted;
            if ((i & 63) == 0) std::this_thread::yield();
        }
        done.store(true);
    });
    std::size_t taken = 0;
    std::uint32_t last = 0;
    bool ordered = true;
    for (;;) {
        const bool finished = done.load();
        state.park_if_idle();  // the counters never move, so the ring always looks quiet
        mesh::Payload payload;
        while (state.outgoing.try_pop(payload)) {
            const std::uint32_t n = mesh_test::number_of(payload);
            if (taken != 0 && n <= last) ordered = false;
            last = n;
            ++taken;
        }
        if (finished && !state.outgoing.front_ready()) break;
    }
    sender.join();
    CHECK(accepted > 0);
    CHECK(taken == accepted);
    CHECK(ordered);
}

TEST_CASE("a header announcing the maximum costs the bytes that arrived, not the announcement") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    mesh_test::EchoPeer<TcpMesh> healthy(server, tcp);
    REQUIRE(healthy.probe(10) == 10);
    const std::size_t before = mesh_test::resident_bytes();
    constexpr int peers = 32;
    std::vector<mesh_test::RawSocket> raws;
    for (int i = 0; i < peers; ++i) {
        raws.push_back(mesh_test::raw_connect(endpoint));
        REQUIRE(raws.back().valid());
        REQUIRE(mesh_test::hex(raws.back().send_hello()) == "00 01");
        Bytes announce = mesh_test::raw_header(16 * 1024 * 1024);
        announce.resize(announce.size() + 100, 0x33);  // and a little of the body
        REQUIRE(raws.back().write_all(announce));
    }
    for (int i = 0; i < peers; ++i) REQUIRE(mesh_test::next_event(server, 10s).has_value());
    REQUIRE(healthy.probe(10) == 10);  // the reactor has been round since the headers came
    const std::size_t during = mesh_test::resident_bytes();
    CAPTURE(before);
    CAPTURE(during);
    // Holding the announcements would be 512 MiB; what arrived is kilobytes.
    if (resident_size_is_meaningful) CHECK(during < before + 64 * 1024 * 1024);
    for (auto& raw : raws) raw.close();
    int ended = 0;
    while (ended < peers) {
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK(event->reason == mesh::errc::truncated_frame);
        ++ended;
    }
    // Reaped: only the healthy connection is left.
    CHECK(mesh_test::wait_until([&] { return server.stats().connections == 1; }));
    CHECK(healthy.probe(10) == 10);
}

TEST_CASE("accepted connections that die are forgotten: registrations and descriptors stay flat") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    std::atomic<bool> stop{false};
    std::thread echo([&] {
        mesh::Envelope envelope;
        while (!stop.load()) {
            if (server.recv_timeout(envelope, 50ms)) continue;
            (void)server.send(std::move(envelope));
        }
    });
    auto one_round = [&](int i) {
        auto client = tcp.connect(endpoint);
        REQUIRE(client.send(mesh_test::numbered(static_cast<std::uint32_t>(i))) == std::error_code());
        mesh::Payload back;
        REQUIRE(client.recv_for(back, 10s) == std::error_code());
        CHECK(mesh_test::number_of(back) == static_cast<std::uint32_t>(i));
        client.disconnect();
    };
    auto drain_events = [&] {
        mesh::ConnectionEvent event;
        while (!server.try_event(event)) {
        }
    };
    for (int i = 0; i < 50; ++i) one_round(i);  // warm up: the reactor's own buffers and caches
    REQUIRE(mesh_test::wait_until([&] { return server.stats().connections == 0; }));
    drain_events();
    const std::size_t descriptors = open_descriptors();
    const std::size_t resident = mesh_test::resident_bytes();
    // 20,000 for a soak (MESH_SOAK_SECONDS set): client ports in TIME_WAIT then come round.
    const int rounds = std::getenv("MESH_SOAK_SECONDS") ? 20000 : 2000;
    for (int i = 0; i < rounds; ++i) {
        one_round(i);
        if (i % 100 == 0) drain_events();
    }
    CHECK(mesh_test::wait_until([&] { return server.stats().connections == 0; }));
    CHECK(server.ids().empty());
    drain_events();
    CHECK(open_descriptors() == descriptors);
    // Kept, they would hold about 98 KiB each: 190 MiB for 2,000.
    if (resident_size_is_meaningful) CHECK(mesh_test::resident_bytes() < resident + 32 * 1024 * 1024);
    const auto totals = server.stats();
    CHECK(totals.messages_in >= static_cast<std::uint64_t>(rounds));
    CHECK(totals.events_dropped == 0);
    stop.store(true);
    echo.join();
}

TEST_CASE("an idle connection's outgoing ring is given back, and the next send takes it again, round after round") {
    mesh::Tcp tcp;
    TcpMesh m;
    constexpr int connections = 64;
    std::vector<mesh::Tcp::connection_type> far;
    for (int i = 0; i < connections; ++i) {
        auto pair = mesh_test::tcp_pair(tcp);
        m.add(std::move(pair.server), "c" + std::to_string(i));
        far.push_back(std::move(pair.client));
    }
    CHECK(m.stats().queue_memory == 0);  // taken at the first send
    // Each ring holds outgoing_capacity cells of at least the inline payload's size.
    constexpr std::size_t at_least = mesh::DefaultConfig::outgoing_capacity * mesh::Payload::inline_capacity;
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        for (int i = 0; i < connections; ++i)
            REQUIRE(m.send("c" + std::to_string(i), mesh_test::numbered(static_cast<std::uint32_t>(round))).ok());
        for (auto& connection : far) {
            mesh::Payload got;
            REQUIRE(connection.recv_for(got, 10s) == std::error_code());
            CHECK(mesh_test::number_of(got) == static_cast<std::uint32_t>(round));
        }
        const std::size_t rings = m.stats().queue_memory;
        CHECK(rings >= connections * at_least);
        CHECK(m.stats("c0").queue_memory == rings / connections);
        const std::size_t busy = mesh_test::heap_in_use();
        // Given back at the second sweep after the last write: within about two seconds.
        CHECK(mesh_test::wait_until([&] { return m.stats().queue_memory == 0; }, 10s));
        const std::size_t idle = mesh_test::heap_in_use();
        CAPTURE(busy);
        CAPTURE(idle);
        CHECK(idle + rings * 7 / 8 < busy);  // the heap has it back
    }
}

TEST_CASE("a connection's buffers are released when it dies") {
    mesh::Tcp tcp;
    auto link = mesh_test::raw_link(tcp, mesh_test::Role::accepted);
    Bytes announce = mesh_test::raw_header(1 << 20);
    announce.resize(announce.size() + 200000, 0x44);  // a fifth of a large frame
    REQUIRE(link.raw.write_all(announce));
    mesh::Payload none;
    CHECK(link.connection.recv_for(none, 100ms) == mesh::errc::timeout);
    CHECK(link.connection.buffered_bytes() > 200000);
    link.connection.disconnect();
    CHECK(link.connection.buffered_bytes() == 0);
}

TEST_CASE("the default id rule makes ids unique") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> server;
    auto listener = transport.listen("inproc://shared-name");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    std::vector<mesh::InprocConnection> clients;
    std::set<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(transport.connect(endpoint));
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
        CHECK(event->id.rfind("inproc://shared-name", 0) == 0);
        ids.insert(event->id);
    }
    CHECK(ids.size() == 3);
    CHECK(ids.count("inproc://shared-name") == 1);
    // Each id reaches its own connection.
    for (std::size_t i = 0; i < clients.size(); ++i) {
        REQUIRE(clients[i].send(mesh_test::numbered(static_cast<std::uint32_t>(i))) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        REQUIRE(server.send(envelope.id, mesh::Payload(envelope.payload)).ok());
        mesh::Payload back;
        REQUIRE(clients[i].recv_for(back, 10s) == std::error_code());
        CHECK(mesh_test::number_of(back) == i);
    }
    CHECK(server.stats().refused == 0);
}

TEST_CASE("the event queue is bounded: what does not fit is dropped and counted") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, FewEvents> server;
    auto listener = transport.listen("inproc://events");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    std::vector<mesh::InprocConnection> clients;
    for (int i = 0; i < 10; ++i) clients.push_back(transport.connect(endpoint));
    REQUIRE(mesh_test::wait_until([&] { return server.stats().connections == 10; }));
    CHECK(server.stats().events_dropped == 6);
    int taken = 0;
    mesh::ConnectionEvent event;
    while (!server.try_event(event)) ++taken;
    CHECK(taken == 4);
    // There is room again.
    clients.push_back(transport.connect(endpoint));
    auto next = mesh_test::next_event(server, 10s);
    REQUIRE(next.has_value());
    CHECK(next->kind == mesh::ConnectionEvent::Kind::connected);
}

TEST_CASE("a disconnect event counts every accepted message that was not written, including the pending write's") {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Outgoing64> m;
    auto link = mesh_test::raw_link(tcp, mesh_test::Role::dialed);
    m.add(std::move(link.connection), "peer");
    // The peer never reads: kernel buffers fill, a write waits, the ring fills.
    std::size_t accepted = 0;
    const mesh::Payload block(16 * 1024, 0x55);
    for (int quiet = 0; quiet < 200;) {
        if (m.send("peer", mesh::Payload(block)).ok()) {
            ++accepted;
            quiet = 0;
        } else {
            ++quiet;
            std::this_thread::sleep_for(1ms);
        }
    }
    REQUIRE(mesh_test::settled(m, "peer"));
    link.raw.reset();  // dies with a write pending
    auto event = mesh_test::next_event(m, 10s);
    REQUIRE(event.has_value());
    CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
    const auto stats = m.stats("peer");
    CAPTURE(accepted);
    CAPTURE(stats.messages_out);
    CHECK(event->discarded > 0);
    CHECK(event->discarded == stats.discarded);
    CHECK(stats.messages_out + event->discarded == accepted);
    CHECK(stats.queue_depth == 0);
}

TEST_CASE("shutdown called from an id rule begins it and returns - nothing is used after it is freed") {
    mesh::Tcp tcp;
    SUBCASE("the rule holds a copy of the mesh") {
        std::string endpoint;
        std::atomic<bool> called{false};
        {
            TcpMesh server;
            auto listener = tcp.listen("127.0.0.1:0");
            endpoint = listener.endpoint();
            server.accept_from(std::move(listener), [copy = server, &called](const mesh::TcpConnection&) mutable {
                const auto report = copy.shutdown();
                CHECK(report.discarded_outgoing == 0);
                called.store(true);
                return std::string("x");
            });
            std::error_code ec;
            auto client = tcp.connect(endpoint, ec);
            REQUIRE(mesh_test::wait_until([&] { return called.load(); }));
            REQUIRE(mesh_test::wait_until([&] { return server.is_shut_down(); }));
            mesh::Envelope envelope;
            CHECK(server.recv(envelope) == mesh::errc::shut_down);
        }  // the last handles go here and on the reactor; its thread ends by itself
        CHECK(called.load());
    }
    SUBCASE("the rule reaches the mesh by reference, and the caller's handle goes last") {
        std::atomic<bool> called{false};
        auto server = std::make_unique<TcpMesh>();
        auto listener = tcp.listen("127.0.0.1:0");
        const std::string endpoint = listener.endpoint();
        TcpMesh* raw = server.get();
        server->accept_from(std::move(listener), [raw, &called](const mesh::TcpConnection&) {
            raw->shutdown();
            called.store(true);
            return std::string("x");
        });
        std::error_code ec;
        auto client = tcp.connect(endpoint, ec);
        REQUIRE(mesh_test::wait_until([&] { return called.load(); }));
        CHECK(finishes_within(10s, [&] { server.reset(); }));
    }
}

TEST_CASE("remove, recv and next_event from an id rule refuse with on_reactor_thread instead of hanging") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> server;
    auto keep = transport.listen("inproc://keep");
    auto kept_client = transport.connect(keep.endpoint());
    server.add(keep.accept(), "kept");
    auto listener = transport.listen("inproc://rule");
    const std::string endpoint = listener.endpoint();
    std::promise<std::vector<std::error_code>> seen;
    server.accept_from(std::move(listener), [&server, &seen](const mesh::InprocConnection&) {
        std::vector<std::error_code> codes;
        std::error_code ec;
        (void)server.remove("kept", ec);
        codes.push_back(ec);
        mesh::Envelope envelope;
        codes.push_back(server.recv(envelope));
        codes.push_back(server.recv_timeout(envelope, 1s));
        mesh::ConnectionEvent event;
        codes.push_back(server.next_event(event, 1s));
        codes.push_back(server.try_event(event));  // never waits, so it is allowed
        seen.set_value(codes);
        return std::string("new");
    });
    auto client = transport.connect(endpoint);
    auto future = seen.get_future();
    REQUIRE(future.wait_for(10s) == std::future_status::ready);
    const auto codes = future.get();
    REQUIRE(codes.size() == 5);
    for (int i = 0; i < 4; ++i) CHECK(codes[static_cast<std::size_t>(i)] == mesh::errc::on_reactor_thread);
    CHECK(codes[4] == mesh::errc::timeout);
    // The mesh is unharmed: the kept connection is still there, and shutdown returns.
    auto result = server.send("kept", mesh::to_payload("still here"));
    CHECK(result.ok());
    mesh::Payload got;
    REQUIRE(kept_client.recv_for(got, 10s) == std::error_code());
    CHECK(mesh_test::text(got) == "still here");
    CHECK(finishes_within(10s, [&] { server.shutdown(); }));
}

#if !MESH_TEST_ASAN && !MESH_TEST_TSAN
struct Huge : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = std::size_t(1) << 40;
};

TEST_CASE("a queue whose storage cannot be allocated refuses the send as full") {
    // No machine has room for 2^40 cells: allocate fails, and try_send (noexcept) says so.
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Huge> m;
    auto pair = mesh_test::tcp_pair(tcp);
    m.add(std::move(pair.server), "peer");
    const auto result = m.send("peer", mesh::to_payload("x"));
    CHECK(result.error == mesh::errc::queue_full);
    CHECK(m.stats("peer").rejected_full == 1);
}
#endif

} // TEST_SUITE("lifecycle")

TEST_SUITE("lifecycle") {

TEST_CASE("add and remove, over and over: registrations and memory stay flat") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> m;
    auto listener = transport.listen("inproc://cycles");
    auto cycle = [&](int i) {
        auto client = transport.connect(listener.endpoint());
        m.add(listener.accept(), "c");
        if (i % 16 == 0) {
            REQUIRE(client.send(mesh_test::numbered(static_cast<std::uint32_t>(i))) == std::error_code());
            REQUIRE(m.send("c", mesh_test::numbered(static_cast<std::uint32_t>(i))).ok());
        }
        auto back = m.remove("c");
        REQUIRE(back.is_open());
    };
    for (int i = 0; i < 1000; ++i) cycle(i);
    mesh::Envelope envelope;
    while (!m.try_recv(envelope)) {
    }
    const std::size_t resident = mesh_test::resident_bytes();
    for (int i = 0; i < add_remove_cycles; ++i) cycle(i);
    while (!m.try_recv(envelope)) {
    }
    CHECK(m.stats().connections == 0);
    const std::size_t after = mesh_test::resident_bytes();
    MESSAGE(add_remove_cycles << " cycles: resident " << resident / 1024 << " KiB before, " << after / 1024 << " KiB after");
    if (resident_size_is_meaningful) CHECK(after < resident + 16 * 1024 * 1024);
}

// Not under AddressSanitizer: its UndefinedBehaviorSanitizer partner probes memory
// through a pipe, which an exhausted process cannot open, and then reports bogus errors.
#if !MESH_TEST_ASAN
TEST_CASE("the accept loop under descriptor exhaustion waits without spinning, then recovers") {
    mesh::Tcp tcp;
    TcpMesh server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    // Client sockets exist before the limit drops; connecting them needs no descriptor.
    constexpr int clients = 4;
    std::vector<mesh_test::RawSocket> raws;
    for (int i = 0; i < clients; ++i) raws.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage address{};
    socklen_t length = 0;
    REQUIRE(mesh_test::parse_numeric_endpoint(endpoint, address, length));
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    const int lowest_free = ::dup(0);
    REQUIRE(lowest_free >= 0);
    ::close(lowest_free);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor can be had
    const mesh_test::ReactorClock reactor;  // reading /proc needs descriptors
    const auto measured_from = std::chrono::steady_clock::now();
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    for (auto& raw : raws) CHECK(::connect(raw.fd(), reinterpret_cast<sockaddr*>(&address), length) == 0);
    mesh::ConnectionEvent event;
    const auto waited = server.next_event(event, 1s);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
    const auto elapsed = std::chrono::steady_clock::now() - measured_from;
    const std::uint64_t ticks = reactor.ticks();
    CHECK(waited == mesh::errc::timeout);  // nothing could be accepted
    const long per_second = ::sysconf(_SC_CLK_TCK);
    CAPTURE(ticks);
    CHECK(elapsed >= 900ms);
    CHECK(ticks * 10 < static_cast<std::uint64_t>(per_second));  // under a tenth of a core
    // Recovery: every client is accepted and served once descriptors are there again.
    for (auto& raw : raws) REQUIRE(mesh_test::hex(raw.send_hello()) == "00 01");
    for (int i = 0; i < clients; ++i) {
        auto connected = mesh_test::next_event(server, 10s);
        REQUIRE(connected.has_value());
        CHECK(connected->kind == mesh::ConnectionEvent::Kind::connected);
    }
}
#endif

} // TEST_SUITE("lifecycle")
