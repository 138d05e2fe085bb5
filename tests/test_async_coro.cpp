// The asynchronous API from C++20 coroutines (asio::use_awaitable): awaiting each
// operation, cancelling one by racing it against a timer, and coroutines sharing a
// mesh with blocking receivers. Built as C++20 whatever the rest of the suite uses.
#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/mesh_pairs.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using mesh_test::numbered;
using mesh_test::number_of;
using TcpMeshes = mesh_test::TcpMeshes<>;

namespace {

// Runs the coroutine that `function` returns on a fresh io_context until it finishes,
// and rethrows what it threw. co_spawn keeps the function (and its captures) alive.
template <class Function>
void run(Function function) {
    asio::io_context io;
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(function), [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
}

} // namespace

TEST_CASE("coroutines await async_send, async_recv and async_next_event") {
    TcpMeshes m;
    run([&]() -> asio::awaitable<void> {
        co_await m.b.async_send("a", mesh::Payload(std::string("awaited")), asio::use_awaitable);
        const mesh::Envelope envelope = co_await m.a.async_recv(asio::use_awaitable);
        CHECK(envelope.id == "b");
        CHECK(envelope.payload.view() == "awaited");
        auto removed = m.b.remove("a");
        removed.disconnect();
        const mesh::ConnectionEvent event = co_await m.a.async_next_event(asio::use_awaitable);
        CHECK(event.kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK(event.id == "b");
        try {
            co_await m.a.async_send("nobody", mesh::Payload(std::string("x")), asio::use_awaitable);
            FAIL("no exception");
        } catch (const std::system_error& e) {
            CHECK(e.code() == mesh::errc::not_found);
        }
    });
}

TEST_CASE("an async_recv that loses a race with a timer is cancelled and takes nothing") {
    TcpMeshes m;
    run([&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 20ms);
        auto winner = co_await (m.a.async_recv(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
        CHECK(winner.index() == 1);  // the timer: the receive was cancelled through its slot
        co_await m.b.async_send("a", mesh::Payload(std::string("after the race")), asio::use_awaitable);
        const mesh::Envelope envelope = co_await m.a.async_recv(asio::use_awaitable);
        CHECK(envelope.payload.view() == "after the race");
    });
}

TEST_CASE("an async_send that loses a race with a timer under backpressure has queued nothing") {
    mesh_test::InprocMeshes<mesh_test::Caps16> m;
    auto& a = m.a;
    auto& b = m.b;
    std::uint32_t filled = 0;
    while (a.send("b", numbered(filled)).ok()) ++filled;
    REQUIRE(mesh_test::wait_until([&] {  // the peer's reactor has read what it can: still full
        if (a.send("b", numbered(filled)).ok()) ++filled;
        return a.stats("b").rejected_full > 100;
    }));
    run([&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 20ms);
        auto winner = co_await (a.async_send("b", numbered(424242), asio::use_awaitable) ||
                                timer.async_wait(asio::use_awaitable));
        CHECK(winner.index() == 1);
    });
    for (std::uint32_t n = 0; n < filled; ++n) {
        mesh::Envelope envelope;
        REQUIRE_FALSE(b.recv_timeout(envelope, 10s));
        REQUIRE(number_of(envelope.payload) == n);
    }
    mesh::Envelope extra;
    CHECK(b.recv_timeout(extra, 50ms) == mesh::errc::timeout);
}

TEST_CASE("16 coroutines and 16 blocking receivers share one mesh: each envelope once") {
    TcpMeshes m;
    constexpr std::uint32_t total = 20000;
    std::vector<std::atomic<int>> seen(total);
    std::atomic<std::uint32_t> received{0}, by_coroutines{0};
    const auto take = [&](const mesh::Envelope& envelope) {
        const auto n = number_of(envelope.payload);
        REQUIRE(n < total);
        seen[n].fetch_add(1);
        received.fetch_add(1);
    };
    asio::io_context io;
    std::atomic<int> coroutines_done{0};
    for (int i = 0; i < 16; ++i)
        asio::co_spawn(
            io,
            [&, receiver = m.a.get_receiver()]() mutable -> asio::awaitable<void> {
                for (;;) {
                    mesh::Envelope envelope;
                    try {
                        envelope = co_await receiver.async_recv(asio::use_awaitable);
                    } catch (const std::system_error& e) {
                        CHECK(e.code() == mesh::errc::shut_down);
                        break;
                    }
                    take(envelope);
                    by_coroutines.fetch_add(1);
                }
                coroutines_done.fetch_add(1);
            },
            asio::detached);
    std::thread coroutine_thread([&] { io.run(); });
    std::vector<std::thread> blocking;
    for (int i = 0; i < 16; ++i)
        blocking.emplace_back([&, receiver = m.a.get_receiver()]() mutable {
            mesh::Envelope envelope;
            while (!receiver.recv(envelope)) take(envelope);
        });
    auto sender = m.b.connection_sender("a");
    for (std::uint32_t n = 0; n < total; ++n)
        while (!sender.send(numbered(n)).ok()) std::this_thread::yield();
    REQUIRE(mesh_test::wait_until([&] { return received.load() == total; }, 30s));
    m.a.shutdown();
    for (auto& thread : blocking) thread.join();
    coroutine_thread.join();  // run() returned: every coroutine finished
    CHECK(coroutines_done.load() == 16);
    for (std::uint32_t n = 0; n < total; ++n) REQUIRE(seen[n].load() == 1);
    MESSAGE("coroutines took " << by_coroutines.load() << " of " << total);
}
