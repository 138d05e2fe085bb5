// Every public call of a mesh at once, from many threads, with shutdown racing all of
// it. Meant for ThreadSanitizer: a data race, a crash or a stall fails it. The run
// lasts MESH_SOAK_SECONDS seconds (2 by default): set it higher for a long soak.
#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/wait.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Runs the workers; fails and aborts (a hang would say nothing) when one of them has
// not finished `grace` after the round's end.
class Workers {
public:
    void spawn(std::function<void()> body) {
        ++started_;
        threads_.emplace_back([this, body = std::move(body)] {
            body();
            finished_.fetch_add(1);
        });
    }
    void join_within(std::chrono::milliseconds grace) {
        if (!mesh_test::wait_until([&] { return finished_.load() == started_; }, grace)) {
            std::fprintf(stderr, "chaos: %d of %d workers stalled\n", started_ - finished_.load(), started_);
            FAIL_CHECK("a worker stalled");
            std::abort();
        }
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

private:
    std::vector<std::thread> threads_;
    int started_ = 0;
    std::atomic<int> finished_{0};
};

bool one_of(const std::error_code& ec, std::initializer_list<mesh::errc> allowed) {
    if (!ec) return true;
    for (auto e : allowed)
        if (ec == e) return true;
    return false;
}

} // namespace

TEST_SUITE("chaos") {

TEST_CASE("chaos: add, remove, send, recv, copies, accept_from and shutdown race - nothing stalls or races") {
    const auto total = mesh_test::soak_duration(2s);
    const auto round_length = 400ms;
    const auto end = Clock::now() + total;
    std::atomic<std::uint64_t> unexpected{0};
    std::string first_unexpected;
    std::mutex note_mutex;
    auto note = [&](const char* where, const std::error_code& ec) {
        if (unexpected.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(note_mutex);
            first_unexpected = std::string(where) + ": " + ec.message();
        }
    };
    int rounds = 0;
    std::uint64_t delivered = 0;
    while (rounds == 0 || Clock::now() < end) {
        ++rounds;
        mesh::Inproc transport;
        mesh::Mesh<mesh::Inproc> m;
        std::atomic<bool> over{false};
        std::atomic<std::uint64_t> received{0};
        std::atomic<int> accepted_ids{0};
        const std::string accept_name = "inproc://chaos-accept-" + std::to_string(rounds);
        m.accept_from(transport.listen(accept_name), [&accepted_ids](const mesh::InprocConnection&) {
            return "acc-" + std::to_string(accepted_ids.fetch_add(1));
        });
        Workers workers;
        const auto round_end = Clock::now() + round_length;
        auto running = [&] { return !over.load() && Clock::now() < round_end; };

        // Two threads add and remove connections of their own; their peers echo nothing.
        for (int k = 0; k < 2; ++k) {
            workers.spawn([&, k] {
                std::mt19937 rng(static_cast<unsigned>(k + rounds * 7));
                std::map<std::string, mesh::InprocConnection> peers;
                auto listener = transport.listen("inproc://chaos-" + std::to_string(rounds) + "-" + std::to_string(k));
                int next = 0;
                while (running()) {
                    const std::string id = "t" + std::to_string(k) + "-" + std::to_string(next % 8);
                    if (rng() % 2 == 0) {
                        auto client = transport.connect(listener.endpoint());
                        std::error_code ec;
                        m.add(listener.accept(), id, ec);
                        if (!ec) peers[id] = std::move(client);
                        else if (!one_of(ec, {mesh::errc::duplicate_id, mesh::errc::shut_down})) note("add", ec);
                    } else {
                        std::error_code ec;
                        auto back = m.remove(id, ec);
                        if (!one_of(ec, {mesh::errc::not_found, mesh::errc::shut_down})) note("remove", ec);
                        peers.erase(id);
                    }
                    ++next;
                }
            });
        }
        // Two senders, by id and through connection senders held across removals.
        for (int k = 0; k < 2; ++k) {
            workers.spawn([&, k] {
                std::mt19937 rng(static_cast<unsigned>(100 + k + rounds));
                while (running()) {
                    const std::string id = (rng() % 3 == 0 ? "acc-" + std::to_string(rng() % 4)
                                                           : "t" + std::to_string(rng() % 2) + "-" + std::to_string(rng() % 8));
                    const auto result = m.send(id, mesh_test::numbered(rng()));
                    if (!one_of(result.error, {mesh::errc::not_found, mesh::errc::queue_full, mesh::errc::disconnected,
                                               mesh::errc::shut_down}))
                        note("send", result.error);
                    std::error_code ec;
                    auto sender = m.connection_sender(id, ec);
                    if (!ec) {
                        for (int i = 0; i < 8; ++i) (void)sender.send(mesh_test::numbered(static_cast<std::uint32_t>(i)));
                    }
                    (void)m.stats();
                }
            });
        }
        // Receivers on copies made and dropped as they go.
        for (int k = 0; k < 2; ++k) {
            workers.spawn([&] {
                while (running()) {
                    auto copy = m;
                    auto receiver = copy.get_receiver();
                    mesh::Envelope envelope;
                    const auto ec = receiver.recv_timeout(envelope, 5ms);
                    if (!ec) received.fetch_add(1);
                    else if (!one_of(ec, {mesh::errc::timeout, mesh::errc::shut_down})) note("recv", ec);
                }
            });
        }
        // Clients of the accepting listener that send a little and leave.
        workers.spawn([&] {
            while (running()) {
                std::error_code ec;
                auto client = transport.connect(accept_name, ec);
                if (ec) continue;  // the listener closed at shutdown
                (void)client.send(mesh_test::numbered(1));
                mesh::ConnectionEvent event;
                while (!m.try_event(event)) {
                }
            }
        });
        // Shutdown, at a random moment of the round, while everything else goes on.
        workers.spawn([&] {
            std::mt19937 rng(static_cast<unsigned>(rounds));
            std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 300));
            const auto report = m.shutdown();
            (void)report;
            over.store(true);
            mesh::Envelope envelope;
            if (m.recv(envelope) != mesh::errc::shut_down) note("recv after shutdown", {});
            if (m.send("t0-0", mesh::to_payload("late")).error != mesh::errc::shut_down) note("send after shutdown", {});
        });
        workers.join_within(round_length + 20s);
        delivered += received.load();
    }
    CAPTURE(rounds);
    CAPTURE(delivered);
    CHECK_MESSAGE(unexpected.load() == 0, first_unexpected);
    CHECK(rounds >= 1);
}

} // TEST_SUITE("chaos")
