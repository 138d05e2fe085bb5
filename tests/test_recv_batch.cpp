// recv into a caller's array of envelopes: what is queued, up to the room given,
// with the waiting, errors and backpressure of the single recv.
#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/wait.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

using mesh::Envelope;
using mesh::errc;
using mesh_test::connected_pair;
using mesh_test::number_of;
using mesh_test::numbered;
using namespace std::chrono_literals;

using mesh_test::Incoming16;
namespace {

using Mesh = mesh::Mesh<mesh::Inproc>;


// Far ends of inproc connections whose near ends are in `m` under a0, a1, ...
template <class M>
std::vector<mesh::Inproc::connection_type> far_ends(mesh::Inproc& transport, M& m, int n, const std::string& name) {
    std::vector<mesh::Inproc::connection_type> far;
    for (int i = 0; i < n; ++i) {
        auto pair = connected_pair(transport, name + std::to_string(i));
        m.add(std::move(pair.client), "a" + std::to_string(i));
        far.push_back(std::move(pair.server));
    }
    return far;
}

} // namespace

TEST_SUITE("recv batch") {

TEST_CASE("the reactor receives into a queue cell in place: a declined, throwing or full push queues nothing") {
    mesh::detail::IncomingQueue<2> queue;
    mesh::detail::IdSource ids("peer");
    const auto none = [] {};
    CHECK(queue.try_push_from(ids, [](mesh::Payload& cell) {
        cell = mesh::Payload{1, 2, 3};
        return true;
    }));
    CHECK_FALSE(queue.try_push_from(ids, [](mesh::Payload& cell) {
        cell = mesh::Payload{9};  // written, then declined: dropped with its cell's id
        return false;
    }));
    CHECK_THROWS_AS(queue.try_push_from(ids, [](mesh::Payload&) -> bool { throw std::bad_alloc(); }), std::bad_alloc);
    CHECK(queue.size() == 1);
    CHECK(queue.try_push_from(ids, [](mesh::Payload& cell) {
        cell = mesh::Payload{4};
        return true;
    }));
    CHECK_FALSE(queue.has_room());
    bool asked = false;
    CHECK_FALSE(queue.try_push_from(ids, [&](mesh::Payload&) { return asked = true; }));
    CHECK_FALSE(asked);  // full: the connection is not asked for a message

    std::array<Envelope, 4> out;
    std::size_t taken = 0;
    REQUIRE_FALSE(queue.try_pop(out.data(), out.size(), taken, none));
    REQUIRE(taken == 2);
    CHECK(out[0].id == "peer");
    CHECK(out[0].payload == mesh::Payload{1, 2, 3});
    CHECK(out[1].id == "peer");
    CHECK(out[1].payload == mesh::Payload{4});
    CHECK(queue.has_room());
}

TEST_CASE("a batch takes what is queued, up to the room given, each connection in order") {
    mesh::Inproc transport;
    Mesh m;
    auto far = far_ends(transport, m, 2, "batch-order");
    constexpr std::uint32_t each = 10;
    for (std::uint32_t i = 0; i < each; ++i)
        for (auto& f : far) REQUIRE(f.send(numbered(i)) == std::error_code());
    REQUIRE(mesh_test::wait_until([&] { return m.stats().messages_in == 2 * each; }));

    std::array<Envelope, 64> batch;
    std::size_t taken = 99;
    REQUIRE(m.try_recv(batch.data(), 8, taken) == std::error_code());
    CHECK(taken == 8);
    std::map<std::string, std::vector<std::uint32_t>> got;
    for (std::size_t i = 0; i < taken; ++i) got[batch[i].id].push_back(number_of(batch[i].payload));
    REQUIRE(m.recv(batch.data(), batch.size(), taken) == std::error_code());
    CHECK(taken == 2 * each - 8);  // the rest, without waiting for more
    for (std::size_t i = 0; i < taken; ++i) got[batch[i].id].push_back(number_of(batch[i].payload));
    REQUIRE(got.size() == 2);
    for (const auto& entry : got) {
        REQUIRE(entry.second.size() == each);
        for (std::uint32_t i = 0; i < each; ++i) CHECK(entry.second[i] == i);
    }
    CHECK(m.try_recv(batch.data(), batch.size(), taken) == errc::would_block);
    CHECK(taken == 0);
}

TEST_CASE("a batch waits for the first envelope, and times out with none taken") {
    mesh::Inproc transport;
    Mesh m;
    auto far = far_ends(transport, m, 1, "batch-wait");
    std::array<Envelope, 4> batch;
    std::size_t taken = 99;
    const auto start = std::chrono::steady_clock::now();
    CHECK(m.recv_timeout(batch.data(), batch.size(), taken, 100ms) == errc::timeout);
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
    CHECK(taken == 0);

    std::thread later([&] {
        std::this_thread::sleep_for(50ms);  // the receiver is asleep by then
        (void)far[0].send(numbered(7));
    });
    CHECK(m.recv_timeout(batch.data(), batch.size(), taken, 10s) == std::error_code());
    later.join();
    REQUIRE(taken == 1);
    CHECK(number_of(batch[0].payload) == 7);
    CHECK(batch[0].id == "a0");
}

TEST_CASE("a batch of no room returns at once, and after shutdown every form is shut_down") {
    mesh::Inproc transport;
    Mesh m;
    auto far = far_ends(transport, m, 1, "batch-zero");
    REQUIRE(far[0].send(numbered(1)) == std::error_code());
    REQUIRE(mesh_test::wait_until([&] { return m.stats().messages_in == 1; }));
    Envelope one;
    std::size_t taken = 99;
    CHECK(m.recv(&one, 0, taken) == std::error_code());
    CHECK(taken == 0);
    CHECK(m.try_recv(&one, 0, taken) == std::error_code());
    REQUIRE(m.recv(&one, 1, taken) == std::error_code());  // the message is still there
    CHECK(taken == 1);

    Mesh copy = m;
    std::error_code blocked;
    std::size_t blocked_taken = 99;
    std::thread waiter([&] {
        std::array<Envelope, 4> batch;
        blocked = copy.recv(batch.data(), batch.size(), blocked_taken);
    });
    std::this_thread::sleep_for(50ms);  // let it block: shutdown must wake it
    m.shutdown();
    waiter.join();
    CHECK(blocked == errc::shut_down);
    CHECK(blocked_taken == 0);
    CHECK(m.recv(&one, 1, taken) == errc::shut_down);
    CHECK(m.recv_timeout(&one, 1, taken, 1s) == errc::shut_down);
    CHECK(m.try_recv(&one, 1, taken) == errc::shut_down);
    CHECK(m.recv(&one, 0, taken) == errc::shut_down);
    CHECK(taken == 0);
    auto receiver = m.get_receiver();
    CHECK(receiver.try_recv(&one, 1, taken) == errc::shut_down);
}

TEST_CASE("batches drain a full incoming queue: the reactor resumes reading, nothing is lost") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Incoming16> m;
    auto far = far_ends(transport, m, 1, "batch-full");
    constexpr std::uint32_t total = 5000;
    std::thread sender([&] {
        for (std::uint32_t i = 0; i < total; ++i) {
            mesh::Payload payload = numbered(i);
            if (far[0].send(std::move(payload))) return;  // blocks while the pipe is full
        }
    });
    std::array<Envelope, 7> batch;  // less than the queue holds, so resumes come mid-batch
    std::uint32_t next = 0;
    bool ordered = true;
    while (next < total) {
        std::size_t taken = 0;
        const auto ec = m.recv_timeout(batch.data(), batch.size(), taken, 10s);
        if (ec) {
            FAIL_CHECK("recv: " << ec.message() << " after " << next);
            break;
        }
        for (std::size_t i = 0; i < taken; ++i) ordered = ordered && number_of(batch[i].payload) == next++;
    }
    sender.join();
    CHECK(ordered);
    CHECK(next == total);
}

TEST_CASE("four receivers taking batches share the work: every message exactly once") {
    mesh::Inproc transport;
    Mesh m;
    constexpr int connections = 4;
    auto far = far_ends(transport, m, connections, "batch-share");
    constexpr std::uint32_t each = 20000;
    std::atomic<std::uint32_t> received{0};
    std::vector<std::vector<std::uint32_t>> seen(connections, std::vector<std::uint32_t>(each, 0));
    std::vector<std::thread> receivers;
    for (int r = 0; r < 4; ++r) {
        receivers.emplace_back([&, copy = m]() mutable {
            std::array<Envelope, 32> batch;
            std::vector<std::vector<std::uint32_t>> mine(connections, std::vector<std::uint32_t>(each, 0));
            for (;;) {
                std::size_t taken = 0;
                if (copy.recv(batch.data(), batch.size(), taken)) break;  // shut down
                for (std::size_t i = 0; i < taken; ++i)
                    ++mine[std::stoul(batch[i].id.substr(1))][number_of(batch[i].payload)];
                received.fetch_add(static_cast<std::uint32_t>(taken));
            }
            static std::mutex merge;
            std::lock_guard<std::mutex> lock(merge);
            for (int c = 0; c < connections; ++c)
                for (std::uint32_t i = 0; i < each; ++i) seen[c][i] += mine[c][i];
        });
    }
    std::vector<std::thread> senders;
    for (auto& f : far)
        senders.emplace_back([&f] {
            for (std::uint32_t i = 0; i < each; ++i)
                if (f.send(numbered(i))) return;
        });
    for (auto& s : senders) s.join();
    CHECK(mesh_test::wait_until([&] { return received.load() == connections * each; }, 30s));
    m.shutdown();
    for (auto& r : receivers) r.join();
    std::size_t wrong = 0;
    for (int c = 0; c < connections; ++c)
        for (std::uint32_t i = 0; i < each; ++i) wrong += seen[c][i] != 1;
    CHECK(wrong == 0);
}

} // TEST_SUITE("recv batch")
