// The asynchronous API: async_recv, async_send, async_next_event with completion
// tokens, cancellation, shutdown, sharing with blocking receivers, and a mesh on an
// io_context of the application's.
#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/mesh_pairs.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
#include <asio/use_future.hpp>
#if ASIO_VERSION >= 102400
#include <asio/deferred.hpp>
#else
#include <asio/experimental/deferred.hpp>
#endif

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using mesh_test::numbered;
using mesh_test::number_of;
using mesh_test::wait_until;
using mesh_test::InprocMeshes;
using mesh_test::TcpMeshes;

namespace {

#if ASIO_VERSION >= 102400
constexpr auto deferred = asio::deferred;
#else
constexpr auto deferred = asio::experimental::deferred;
#endif

// What a handler saw, set once from whichever thread runs it.
template <class Value>
struct Outcome {
    std::promise<std::pair<std::error_code, Value>> promise;
    std::future<std::pair<std::error_code, Value>> future = promise.get_future();

    auto handler() {
        return [this](std::error_code ec, Value value) { promise.set_value({ec, std::move(value)}); };
    }
    bool ready(std::chrono::milliseconds within = 10s) { return future.wait_for(within) == std::future_status::ready; }
    bool pending() { return future.wait_for(0s) != std::future_status::ready; }
    std::pair<std::error_code, Value> get() { return future.get(); }
};

struct SendOutcome {
    std::promise<std::error_code> promise;
    std::future<std::error_code> future = promise.get_future();
    auto handler() {
        return [this](std::error_code ec) { promise.set_value(ec); };
    }
    bool ready(std::chrono::milliseconds within = 10s) { return future.wait_for(within) == std::future_status::ready; }
    bool pending() { return future.wait_for(0s) != std::future_status::ready; }
};

std::string text_of(const mesh::Envelope& envelope) { return std::string(envelope.payload.view()); }

// Sends `size`-byte numbered messages from `from` to `id` until send says queue_full
// and has said nothing else for 100 ms: the queue and whatever is behind it are full.
template <class M>
std::uint32_t fill(M& from, const std::string& id, std::size_t size) {
    std::uint32_t n = 0;
    auto last = std::chrono::steady_clock::now();
    const auto deadline = last + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
        const auto result = from.send(id, numbered(n, size));
        if (result.ok()) {
            ++n;
            last = std::chrono::steady_clock::now();
        } else {
            REQUIRE(result.error == mesh::errc::queue_full);
            if (std::chrono::steady_clock::now() - last > 100ms) break;
            std::this_thread::yield();
        }
    }
    return n;
}

// Receives `count` envelopes on `m` and checks they are numbered first, first + 1, ...
template <class M>
void receive_in_order(M& m, std::uint32_t first, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
        mesh::Envelope envelope;
        REQUIRE_FALSE(m.recv_timeout(envelope, 10s));
        REQUIRE(number_of(envelope.payload) == first + i);
    }
}

} // namespace

TEST_CASE("async_recv with a callback completes with the envelope, outside the call that started it") {
    InprocMeshes<> m;
    std::atomic<bool> inside{false};
    std::atomic<bool> ran_inside{false};
    Outcome<mesh::Envelope> later;
    inside = true;
    m.a.async_recv([&](std::error_code ec, mesh::Envelope envelope) {
        ran_inside = inside.load();
        later.handler()(ec, std::move(envelope));
    });
    inside = false;
    REQUIRE(m.b.send("a", std::string_view("first")).ok());
    REQUIRE(later.ready());
    auto [ec, envelope] = later.get();
    CHECK_FALSE(ec);
    CHECK(envelope.id == "b");
    CHECK(text_of(envelope) == "first");
    CHECK_FALSE(ran_inside);

    SUBCASE("an envelope already queued still completes outside the call") {
        REQUIRE(m.b.send("a", std::string_view("queued")).ok());
        REQUIRE(wait_until([&] { return m.a.stats().queue_depth == 0 && m.a.stats("b").messages_in == 2; }));
        // It may run before the call returns, but on another thread: posted, never inline.
        Outcome<mesh::Envelope> now;
        const auto caller = std::this_thread::get_id();
        std::atomic<bool> same_thread{true};
        m.a.async_recv([&](std::error_code e, mesh::Envelope env) {
            same_thread = std::this_thread::get_id() == caller;
            now.handler()(e, std::move(env));
        });
        REQUIRE(now.ready());
        CHECK(text_of(now.get().second) == "queued");
        CHECK_FALSE(same_thread);  // the default executor is the system executor's threads
    }
}

TEST_CASE("asio::use_future: async_recv gives the envelope and async_send a future of void") {
    TcpMeshes<> m;
    auto received = m.a.async_recv(asio::use_future);
    auto sent = m.b.async_send("a", mesh::Payload(std::string("over tcp")), asio::use_future);
    REQUIRE(sent.wait_for(10s) == std::future_status::ready);
    CHECK_NOTHROW(sent.get());
    REQUIRE(received.wait_for(10s) == std::future_status::ready);
    const mesh::Envelope envelope = received.get();
    CHECK(text_of(envelope) == "over tcp");

    SUBCASE("an error becomes the future's exception") {
        auto failed = m.b.async_send("nobody", mesh::Payload(std::string("x")), asio::use_future);
        try {
            failed.get();
            FAIL("no exception");
        } catch (const std::system_error& e) {
            CHECK(e.code() == mesh::errc::not_found);
        }
    }
}

TEST_CASE("a deferred async_recv starts only when it is launched") {
    InprocMeshes<> m;
    auto op = m.a.async_recv(deferred);
    REQUIRE(m.b.send("a", std::string_view("one")).ok());
    REQUIRE(m.b.send("a", std::string_view("two")).ok());
    // Not started yet: a blocking receive takes the first envelope.
    mesh::Envelope first;
    REQUIRE_FALSE(m.a.recv_timeout(first, 10s));
    CHECK(text_of(first) == "one");
    Outcome<mesh::Envelope> outcome;
    std::move(op)(outcome.handler());
    REQUIRE(outcome.ready());
    CHECK(text_of(outcome.get().second) == "two");
}

TEST_CASE("a handler runs on its associated executor, whose io_context has work until it completes") {
    InprocMeshes<> m;
    asio::io_context io;
    auto strand = asio::make_strand(io);
    std::thread::id ran_on;
    bool in_strand = false;
    std::string got;
    m.a.async_recv(asio::bind_executor(strand, [&](std::error_code ec, mesh::Envelope envelope) {
        ran_on = std::this_thread::get_id();
        in_strand = strand.running_in_this_thread();
        if (!ec) got = text_of(envelope);
    }));
    std::thread sender([&] {
        std::this_thread::sleep_for(50ms);  // run() below must wait for the operation, not find it done
        REQUIRE(m.b.send("a", std::string_view("via strand")).ok());
    });
    io.run();  // returns only once the handler ran: the pending operation is work
    sender.join();
    CHECK(ran_on == std::this_thread::get_id());
    CHECK(in_strand);
    CHECK(got == "via strand");
}

TEST_CASE("a cancelled async_recv completes with operation_aborted and has taken nothing") {
    InprocMeshes<> m;
    asio::cancellation_signal signal;
    Outcome<mesh::Envelope> cancelled;
    m.a.async_recv(asio::bind_cancellation_slot(signal.slot(), cancelled.handler()));
    SUBCASE("terminal") { signal.emit(asio::cancellation_type::terminal); }
    SUBCASE("partial") { signal.emit(asio::cancellation_type::partial); }
    SUBCASE("total") { signal.emit(asio::cancellation_type::total); }
    REQUIRE(cancelled.ready());
    CHECK(cancelled.get().first == asio::error::operation_aborted);
    REQUIRE(m.b.send("a", std::string_view("kept")).ok());
    mesh::Envelope envelope;
    REQUIRE_FALSE(m.a.recv_timeout(envelope, 10s));
    CHECK(text_of(envelope) == "kept");
    signal.emit(asio::cancellation_type::terminal);  // after completion: nothing happens
}

TEST_CASE("an async_recv cancelled after it completed keeps its envelope") {
    InprocMeshes<> m;
    asio::cancellation_signal signal;
    Outcome<mesh::Envelope> outcome;
    m.a.async_recv(asio::bind_cancellation_slot(signal.slot(), outcome.handler()));
    REQUIRE(m.b.send("a", std::string_view("arrived")).ok());
    REQUIRE(outcome.ready());
    signal.emit(asio::cancellation_type::terminal);
    const auto [ec, envelope] = outcome.get();
    CHECK_FALSE(ec);
    CHECK(text_of(envelope) == "arrived");
}

TEST_CASE("cancel() completes the operations of one handle only") {
    InprocMeshes<> m;
    auto other = m.a;  // a copy: a handle of its own
    auto receiver = m.a.get_receiver();
    Outcome<mesh::Envelope> first, second, kept, of_receiver;
    Outcome<mesh::ConnectionEvent> event;
    m.a.async_recv(first.handler());
    m.a.async_recv(second.handler());
    m.a.async_next_event(event.handler());
    other.async_recv(kept.handler());
    receiver.async_recv(of_receiver.handler());
    m.a.cancel();
    REQUIRE(first.ready());
    REQUIRE(second.ready());
    REQUIRE(event.ready());
    CHECK(first.get().first == asio::error::operation_aborted);
    CHECK(second.get().first == asio::error::operation_aborted);
    CHECK(event.get().first == asio::error::operation_aborted);
    CHECK(kept.pending());
    receiver.cancel();
    REQUIRE(of_receiver.ready());
    CHECK(of_receiver.get().first == asio::error::operation_aborted);
    CHECK(kept.pending());
    REQUIRE(m.b.send("a", std::string_view("for the copy")).ok());
    REQUIRE(kept.ready());
    CHECK(text_of(kept.get().second) == "for the copy");
}

namespace {

// Fills a's queue to b, starts `waiting` async_sends behind it (through a
// ConnectionSender when `bound`), then lets b read: every one is queued, in order, and
// waiting is not counted as refusing.
template <class A, class B>
void sends_wait_for_room(A& a, B& b, std::size_t size, std::uint32_t waiting, bool bound) {
    const std::uint32_t filled = fill(a, "b", size);
    std::vector<SendOutcome> sends(waiting);
    auto sender = a.connection_sender("b");
    for (std::uint32_t i = 0; i < waiting; ++i) {
        if (bound) sender.async_send(numbered(filled + i, size), sends[i].handler());
        else a.async_send("b", numbered(filled + i, size), sends[i].handler());
    }
    CHECK(sends.front().pending());
    const auto rejected = a.stats("b").rejected_full;
    receive_in_order(b, 0, filled + waiting);
    for (auto& send : sends) {
        REQUIRE(send.ready());
        CHECK_FALSE(send.future.get());
    }
    CHECK(a.stats("b").rejected_full == rejected);
}

} // namespace

TEST_CASE("async_send waits for room under backpressure and queues in order") {
    SUBCASE("tcp") {
        TcpMeshes<mesh_test::Caps16> m;
        sends_wait_for_room(m.a, m.b, 64 * 1024, 20, false);
    }
    SUBCASE("inproc: sends go straight to the peer, which makes room as it reads") {
        InprocMeshes<mesh_test::Caps16> m;
        sends_wait_for_room(m.a, m.b, 8, 40, true);
    }
    SUBCASE("multi, holding an inproc connection") {
        mesh::Multi multi;
        auto listener = multi.get<mesh::Inproc>().listen("async-multi");
        mesh::Mesh<mesh::Multi, mesh_test::Caps16> a;
        mesh::Mesh<mesh::Inproc, mesh_test::Caps16> b;
        a.add(multi.connect("inproc://async-multi"), "b");
        b.add(listener.accept(), "a");
        sends_wait_for_room(a, b, 8, 40, false);
    }
}

TEST_CASE("a cancelled async_send has queued nothing, and the ones behind it keep their order") {
    InprocMeshes<mesh_test::Caps16> m;
    const std::uint32_t filled = fill(m.a, "b", 8);
    SendOutcome before, cancelled, after;
    asio::cancellation_signal signal;
    m.a.async_send("b", numbered(filled, 8), before.handler());
    m.a.async_send("b", numbered(9999, 8), asio::bind_cancellation_slot(signal.slot(), cancelled.handler()));
    m.a.async_send("b", numbered(filled + 1, 8), after.handler());
    signal.emit(asio::cancellation_type::terminal);
    REQUIRE(cancelled.ready());
    CHECK(cancelled.future.get() == asio::error::operation_aborted);
    receive_in_order(m.b, 0, filled + 2);
    REQUIRE(before.ready());
    REQUIRE(after.ready());
    CHECK_FALSE(before.future.get());
    CHECK_FALSE(after.future.get());
    mesh::Envelope extra;
    CHECK(m.b.try_recv(extra) == mesh::errc::would_block);
    CHECK(m.a.stats("b").messages_out == filled + 2);
}

TEST_CASE("async_send reports what send reports") {
    InprocMeshes<> m;
    SUBCASE("not_found") {
        auto f = m.a.async_send("nobody", mesh::Payload(std::string("x")), asio::use_future);
        CHECK_THROWS_AS(f.get(), std::system_error);
    }
    SUBCASE("message_too_large") {
        SendOutcome outcome;
        m.a.async_send("b", mesh::Payload(std::vector<std::uint8_t>(mesh::DefaultConfig::max_message_size + 1)),
                       outcome.handler());
        REQUIRE(outcome.ready());
        CHECK(outcome.future.get() == mesh::errc::message_too_large);
    }
    SUBCASE("disconnected, from an Envelope") {
        auto removed = m.b.remove("a");
        removed.disconnect();
        REQUIRE(wait_until([&] { return m.a.send("b", std::string_view("probe")).error == mesh::errc::disconnected; }));
        SendOutcome outcome;
        m.a.async_send(mesh::Envelope{"b", mesh::Payload(std::string("late"))}, outcome.handler());
        REQUIRE(outcome.ready());
        CHECK(outcome.future.get() == mesh::errc::disconnected);
    }
    SUBCASE("a sender bound to nothing: not_found; a moved-from mesh: shut_down") {
        SendOutcome unbound, moved_from;
        mesh::Mesh<mesh::Inproc>::ConnectionSender nothing;
        nothing.async_send(mesh::Payload(std::string("x")), unbound.handler());
        auto taken = std::move(m.b);
        m.b.async_send("a", mesh::Payload(std::string("x")), moved_from.handler());
        REQUIRE(unbound.ready());
        REQUIRE(moved_from.ready());
        CHECK(unbound.future.get() == mesh::errc::not_found);
        CHECK(moved_from.future.get() == mesh::errc::shut_down);
    }
}

TEST_CASE("a waiting async_send completes with disconnected when its connection dies, and not_found when removed") {
    InprocMeshes<mesh_test::Caps16> m;
    fill(m.a, "b", 8);
    SendOutcome waiting;
    m.a.async_send("b", numbered(1, 8), waiting.handler());
    CHECK(waiting.pending());
    SUBCASE("the peer goes") {
        m.b.shutdown();
        REQUIRE(waiting.ready());
        CHECK(waiting.future.get() == mesh::errc::disconnected);
    }
    SUBCASE("removed") {
        auto connection = m.a.remove("b");
        REQUIRE(waiting.ready());
        CHECK(waiting.future.get() == mesh::errc::not_found);
    }
}

TEST_CASE("shutdown completes every waiting operation with shut_down") {
    InprocMeshes<mesh_test::Caps16> m;
    fill(m.a, "b", 8);
    Outcome<mesh::Envelope> recv;
    Outcome<mesh::ConnectionEvent> event;
    SendOutcome send;
    m.a.async_recv(recv.handler());
    m.a.async_next_event(event.handler());
    m.a.async_send("b", numbered(1, 8), send.handler());
    CHECK(recv.pending());
    CHECK(send.pending());
    m.a.shutdown();
    REQUIRE(recv.ready());
    REQUIRE(event.ready());
    REQUIRE(send.ready());
    CHECK(recv.get().first == mesh::errc::shut_down);
    CHECK(event.get().first == mesh::errc::shut_down);
    CHECK(send.future.get() == mesh::errc::shut_down);
    Outcome<mesh::Envelope> after;
    m.a.async_recv(after.handler());
    REQUIRE(after.ready());
    CHECK(after.get().first == mesh::errc::shut_down);
}

TEST_CASE("async_next_event reports what next_event reports") {
    mesh::Mesh<mesh::Tcp> server;
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));
    Outcome<mesh::ConnectionEvent> connected;
    server.async_next_event(connected.handler());
    auto client = tcp.connect(endpoint);
    REQUIRE(connected.ready());
    const auto [ec, event] = connected.get();
    CHECK_FALSE(ec);
    CHECK(event.kind == mesh::ConnectionEvent::Kind::connected);
    Outcome<mesh::ConnectionEvent> disconnected;
    server.async_next_event(disconnected.handler());
    client.disconnect();
    REQUIRE(disconnected.ready());
    CHECK(disconnected.get().second.kind == mesh::ConnectionEvent::Kind::disconnected);
}

TEST_CASE("16 async receivers and 16 blocking receivers share one mesh: each envelope once") {
    TcpMeshes<> m;
    constexpr std::uint32_t total = 20000;
    std::vector<std::atomic<int>> seen(total);
    std::atomic<std::uint32_t> received{0};
    const auto take = [&](const mesh::Envelope& envelope) {
        const auto n = number_of(envelope.payload);
        REQUIRE(n < total);
        seen[n].fetch_add(1);
        received.fetch_add(1);
    };
    // Each async receiver takes the next envelope from its own handler, until shut down.
    struct AsyncReceiver {
        mesh::Mesh<mesh::Tcp> mesh;
        std::function<void(const mesh::Envelope&)> take;
        std::atomic<bool> done{false};
        void start() {
            mesh.async_recv([this](std::error_code ec, mesh::Envelope envelope) {
                if (ec) {
                    done = true;
                    return;
                }
                take(envelope);
                start();
            });
        }
    };
    std::vector<std::unique_ptr<AsyncReceiver>> async_receivers;
    for (int i = 0; i < 16; ++i) {
        async_receivers.push_back(std::make_unique<AsyncReceiver>());
        async_receivers.back()->mesh = m.a;
        async_receivers.back()->take = take;
        async_receivers.back()->start();
    }
    std::atomic<std::uint32_t> by_blocking{0};
    std::vector<std::thread> blocking;
    for (int i = 0; i < 16; ++i)
        blocking.emplace_back([&, receiver = m.a.get_receiver()]() mutable {
            mesh::Envelope envelope;
            while (!receiver.recv(envelope)) {
                take(envelope);
                by_blocking.fetch_add(1);
            }
        });
    auto sender = m.b.connection_sender("a");
    for (std::uint32_t n = 0; n < total; ++n) {
        while (!sender.send(numbered(n)).ok()) std::this_thread::yield();
    }
    REQUIRE(wait_until([&] { return received.load() == total; }, 30s));
    m.a.shutdown();
    for (auto& thread : blocking) thread.join();
    for (auto& receiver : async_receivers) REQUIRE(wait_until([&] { return receiver->done.load(); }));
    for (std::uint32_t n = 0; n < total; ++n) REQUIRE(seen[n].load() == 1);
    CHECK(received.load() == total);
    MESSAGE("blocking receivers took " << by_blocking.load() << " of " << total);
}

TEST_CASE("a mesh on the application's io_context runs inside io.run(), on one thread") {
    asio::io_context io;
    mesh::Mesh<mesh::Tcp> node(io);
    mesh::Mesh<mesh::Tcp> peer;  // on its own thread
    mesh::Tcp tcp;
    auto pair = mesh_test::tcp_pair(tcp);
    node.add(std::move(pair.client), "peer");
    peer.add(std::move(pair.server), "node");
    REQUIRE(peer.send("node", std::string_view("ping")).ok());

    std::vector<std::string> log;
    std::error_code blocking_recv, blocking_event;
    node.async_recv([&](std::error_code ec, mesh::Envelope envelope) {
        REQUIRE_FALSE(ec);
        log.push_back(text_of(envelope));
        mesh::Envelope unused;
        blocking_recv = node.recv(unused);  // would wait on the io_context's own thread
        mesh::ConnectionEvent event;
        blocking_event = node.next_event(event, 1s);
        node.async_send("peer", mesh::Payload(std::string("pong")), [&](std::error_code sent) {
            REQUIRE_FALSE(sent);
            log.push_back("sent");
            const auto report = node.shutdown();  // only begins, on this thread
            CHECK(report.discarded_outgoing == 0);
            log.push_back("shutting down");
        });
    });
    io.run();  // returns once the shutdown is done: the mesh held work until then
    CHECK(node.is_shut_down());
    REQUIRE(log == std::vector<std::string>{"ping", "sent", "shutting down"});
    CHECK(blocking_recv == mesh::errc::on_reactor_thread);
    CHECK(blocking_event == mesh::errc::on_reactor_thread);
    mesh::Envelope pong;
    REQUIRE_FALSE(peer.recv_timeout(pong, 10s));
    CHECK(text_of(pong) == "pong");
}

TEST_CASE("a mesh on the application's io_context, run by another thread: shutdown from outside waits for the report") {
    asio::io_context io;
    auto node = std::make_optional<mesh::Mesh<mesh::Inproc>>(io);
    std::thread runner([&] { io.run(); });
    mesh::Mesh<mesh::Inproc> peer;
    mesh::Inproc transport;
    auto pair = mesh_test::connected_pair(transport, "outside");
    node->add(std::move(pair.client), "peer");
    peer.add(std::move(pair.server), "node");
    REQUIRE(peer.send("node", std::string_view("unread")).ok());
    REQUIRE(wait_until([&] { return node->stats("peer").messages_in == 1; }));
    const auto report = node->shutdown();
    CHECK(report.discarded_incoming == 1);
    node.reset();
    runner.join();  // run() returned: nothing of the mesh's is left on the io_context
}

TEST_CASE("a mesh on the application's io_context that is dropped without a shutdown lets run() return") {
    asio::io_context io;
    {
        mesh::Mesh<mesh::Inproc> node(io);
        mesh::Inproc transport;
        auto pair = mesh_test::connected_pair(transport, "dropped");
        node.add(std::move(pair.client), "peer");
    }  // the last copy goes: the shutdown begins, and is done inside run()
    io.run();
    CHECK(io.stopped());
}

TEST_CASE("an async_send to a dialer's connection that is down waits for its next connection") {
    using Kind = mesh::ConnectionEvent::Kind;
    using TcpMesh = mesh::Mesh<mesh::Tcp>;
    const auto wait_for = [](TcpMesh& m, Kind kind) {
        for (;;) {
            auto event = mesh_test::next_event(m, 10s);
            if (!event) return false;
            if (event->kind == kind && event->id == "peer") return true;
        }
    };
    mesh::Tcp tcp;
    auto peer = std::make_unique<TcpMesh>();
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    const std::string port = endpoint.substr(endpoint.rfind(':') + 1);
    peer->accept_from(std::move(listener));
    TcpMesh node;
    mesh::DialOptions options;
    options.initial_backoff = 50ms;
    options.max_backoff = 200ms;
    mesh::Dialer dialer = node.dial(tcp, endpoint, "peer", options);
    REQUIRE(wait_for(node, Kind::dialed));
    peer.reset();  // shut down: the dialed connection ends
    REQUIRE(wait_for(node, Kind::disconnected));

    SendOutcome first, second;
    node.async_send("peer", mesh::to_payload("sent while down"), first.handler());
    node.async_send("peer", mesh::to_payload("and another"), second.handler());
    CHECK(node.send("peer", std::string_view("blocking")).error == mesh::errc::disconnected);
    CHECK(first.pending());

    SUBCASE("the peer comes back on the same port: both are queued there, in order") {
        TcpMesh again;
        again.accept_from(tcp.listen("127.0.0.1:" + port));
        REQUIRE(first.ready());
        REQUIRE(second.ready());
        CHECK_FALSE(first.future.get());
        CHECK_FALSE(second.future.get());
        mesh::Envelope envelope;
        REQUIRE_FALSE(again.recv_timeout(envelope, 10s));
        CHECK(text_of(envelope) == "sent while down");
        REQUIRE_FALSE(again.recv_timeout(envelope, 10s));
        CHECK(text_of(envelope) == "and another");
    }
    SUBCASE("the dialer stops: disconnected") {
        dialer.stop();
        REQUIRE(first.ready());
        REQUIRE(second.ready());
        CHECK(first.future.get() == mesh::errc::disconnected);
        CHECK(second.future.get() == mesh::errc::disconnected);
    }
    SUBCASE("the connection is removed: not_found") {
        auto connection = node.remove("peer");
        REQUIRE(first.ready());
        REQUIRE(second.ready());
        CHECK(first.future.get() == mesh::errc::not_found);
    }
    SUBCASE("the mesh shuts down: shut_down") {
        node.shutdown();
        REQUIRE(first.ready());
        REQUIRE(second.ready());
        CHECK(first.future.get() == mesh::errc::shut_down);
    }
}
