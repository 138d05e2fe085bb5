#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/wait.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using mesh::ConnectionEvent;
using mesh::Envelope;
using mesh::errc;
using mesh::Payload;
using mesh_test::connected_pair;
using mesh_test::number_of;
using mesh_test::numbered;
using mesh_test::wait_until;
using namespace std::chrono_literals;

using mesh_test::Incoming16;
using mesh_test::SmallMessages;
namespace {

using clock_type = std::chrono::steady_clock;

struct In16Out8 : mesh::DefaultConfig {
    static constexpr std::size_t incoming_capacity = 16;
    static constexpr std::size_t outgoing_capacity = 8;
};
struct SenderSide : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 64;
};

using Mesh = mesh::Mesh<mesh::Inproc>;

bool allowed_send_error(const std::error_code& ec) {
    return !ec || ec == errc::queue_full || ec == errc::not_found || ec == errc::disconnected;
}

// Joins every thread; true if all of them finished before `deadline`.
bool join_all_by(std::vector<std::thread>& threads, const std::vector<std::atomic<bool>*>& done,
                 clock_type::time_point deadline) {
    const bool in_time = wait_until([&] {
        for (auto* flag : done)
            if (!flag->load()) return false;
        return true;
    }, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()));
    for (auto& t : threads) t.join();
    return in_time;
}

} // namespace

TEST_SUITE("mesh concurrency") {

TEST_CASE("16 receiver threads and 100,000 messages from 8 connections: each received exactly once") {
    constexpr std::uint32_t connections = 8;
    constexpr std::uint32_t per_connection = 12500;
    constexpr std::uint32_t total = connections * per_connection;
    constexpr int receivers = 16;

    mesh::Inproc transport;
    Mesh m;
    std::vector<mesh_test::InprocPair> pairs;
    for (std::uint32_t c = 0; c < connections; ++c) {
        pairs.push_back(connected_pair(transport, "many-" + std::to_string(c)));
        m.add(std::move(pairs.back().server), "c" + std::to_string(c));
    }

    std::unique_ptr<std::atomic<std::uint8_t>[]> seen(new std::atomic<std::uint8_t>[total]);
    for (std::uint32_t i = 0; i < total; ++i) seen[i].store(0, std::memory_order_relaxed);
    std::atomic<std::uint32_t> received{0}, bad{0}, out_of_order{0};

    std::vector<std::thread> receiver_threads;
    std::vector<std::error_code> ends(receivers);
    for (int r = 0; r < receivers; ++r) {
        receiver_threads.emplace_back([&, r, copy = m]() mutable {
            // Each receiver pops in queue order, so what it gets from one connection ascends.
            std::array<std::int64_t, connections> last;
            last.fill(-1);
            Envelope envelope;
            for (;;) {
                const auto ec = copy.recv(envelope);
                if (ec) {
                    ends[static_cast<std::size_t>(r)] = ec;
                    return;
                }
                const auto n = number_of(envelope.payload);
                const auto c = n / per_connection;
                if (n >= total || envelope.id != "c" + std::to_string(c)) {
                    ++bad;
                    continue;
                }
                if (static_cast<std::int64_t>(n) <= last[c]) ++out_of_order;
                last[c] = n;
                seen[n].fetch_add(1, std::memory_order_relaxed);
                received.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    std::vector<std::thread> senders;
    for (std::uint32_t c = 0; c < connections; ++c) {
        senders.emplace_back([&, c] {
            for (std::uint32_t i = 0; i < per_connection; ++i)
                if (pairs[c].client.send(numbered(c * per_connection + i))) return;
        });
    }
    for (auto& t : senders) t.join();
    CHECK(wait_until([&] { return received.load() >= total; }, 20s));
    // Nothing more may arrive.
    Envelope extra;
    CHECK(m.recv_timeout(extra, 50ms) == errc::timeout);
    m.shutdown();
    for (auto& t : receiver_threads) t.join();

    CHECK(received.load() == total);
    CHECK(bad.load() == 0);
    CHECK(out_of_order.load() == 0);
    std::uint32_t missing = 0, duplicated = 0;
    for (std::uint32_t i = 0; i < total; ++i) {
        const auto count = seen[i].load(std::memory_order_relaxed);
        if (count == 0) ++missing;
        if (count > 1) ++duplicated;
    }
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    for (const auto& ec : ends) CHECK(ec == errc::shut_down);
}

TEST_CASE("shutdown from one copy wakes a recv blocked on another copy") {
    Mesh m;
    std::atomic<bool> done{false};
    std::error_code result;
    std::thread receiver([&, copy = m]() mutable {
        Envelope envelope;
        result = copy.recv(envelope);
        done = true;
    });
    CHECK_FALSE(wait_until([&] { return done.load(); }, 50ms));  // really waiting
    const auto start = clock_type::now();
    m.shutdown();
    CHECK(wait_until([&] { return done.load(); }, 2s));
    receiver.join();
    CHECK(clock_type::now() - start < 2s);
    CHECK(result == errc::shut_down);
}

TEST_CASE("shutdown wakes 16 receivers blocked in recv and recv_timeout, all within 2 s") {
    Mesh m;
    constexpr int receivers = 16;
    std::vector<std::thread> threads;
    std::vector<std::unique_ptr<std::atomic<bool>>> done;
    std::vector<std::error_code> results(receivers);
    std::atomic<int> started{0};
    for (int r = 0; r < receivers; ++r) {
        done.push_back(std::make_unique<std::atomic<bool>>(false));
        threads.emplace_back([&, r, copy = m]() mutable {
            Envelope envelope;
            ++started;
            results[static_cast<std::size_t>(r)] = (r % 2 == 0) ? copy.recv(envelope) : copy.recv_timeout(envelope, 60s);
            *done[static_cast<std::size_t>(r)] = true;
        });
    }
    CHECK(wait_until([&] { return started.load() == receivers; }, 5s));
    CHECK_FALSE(wait_until([&] {
        for (auto& d : done)
            if (d->load()) return true;
        return false;
    }, 50ms));

    const auto start = clock_type::now();
    m.shutdown();
    CHECK(clock_type::now() - start < 2s);
    std::vector<std::atomic<bool>*> flags;
    for (auto& d : done) flags.push_back(d.get());
    CHECK(join_all_by(threads, flags, start + 2s));
    for (const auto& ec : results) CHECK(ec == errc::shut_down);
}

TEST_CASE("shutdown with a full incoming queue, flooding peers and 16 receivers returns promptly") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Incoming16> m;
    constexpr int peers = 4;
    std::vector<mesh_test::InprocPair> pairs;
    for (int p = 0; p < peers; ++p) {
        pairs.push_back(connected_pair(transport, "flood-" + std::to_string(p)));
        m.add(std::move(pairs.back().server), "p" + std::to_string(p));
    }
    // The peers send until the mesh goes away: their pipes fill behind the full queue.
    std::vector<std::thread> peer_threads;
    std::vector<std::unique_ptr<std::atomic<bool>>> peer_done;
    std::vector<std::error_code> peer_ends(peers);
    for (int p = 0; p < peers; ++p) {
        peer_done.push_back(std::make_unique<std::atomic<bool>>(false));
        peer_threads.emplace_back([&, p] {
            for (std::uint32_t i = 0;; ++i) {
                if (auto ec = pairs[static_cast<std::size_t>(p)].client.send(numbered(i))) {
                    peer_ends[static_cast<std::size_t>(p)] = ec;
                    break;
                }
            }
            *peer_done[static_cast<std::size_t>(p)] = true;
        });
    }
    // Nobody receives yet: the queue fills and the reactor stops reading.
    CHECK(wait_until([&] { return m.stats().messages_in >= Incoming16::incoming_capacity; }, 5s));
    CHECK(m.stats().messages_in <= Incoming16::incoming_capacity + peers);

    SUBCASE("with 16 receivers busy draining it") {
        constexpr int receivers = 16;
        std::vector<std::thread> threads;
        std::vector<std::unique_ptr<std::atomic<bool>>> done;
        std::vector<std::error_code> results(receivers);
        std::atomic<std::uint64_t> received{0};
        for (int r = 0; r < receivers; ++r) {
            done.push_back(std::make_unique<std::atomic<bool>>(false));
            threads.emplace_back([&, r, copy = m]() mutable {
                Envelope envelope;
                std::error_code ec;
                while (!(ec = copy.recv(envelope))) ++received;
                results[static_cast<std::size_t>(r)] = ec;
                *done[static_cast<std::size_t>(r)] = true;
            });
        }
        CHECK(wait_until([&] { return received.load() > 1000; }, 10s));
        const auto start = clock_type::now();
        m.shutdown();
        CHECK(clock_type::now() - start < 2s);
        std::vector<std::atomic<bool>*> flags;
        for (auto& d : done) flags.push_back(d.get());
        CHECK(join_all_by(threads, flags, start + 2s));
        for (const auto& ec : results) CHECK(ec == errc::shut_down);
    }
    SUBCASE("with nobody receiving") {
        const auto start = clock_type::now();
        const auto report = m.shutdown();
        CHECK(clock_type::now() - start < 2s);
        CHECK(report.discarded_incoming >= Incoming16::incoming_capacity);
        Envelope envelope;
        CHECK(m.recv(envelope) == errc::shut_down);
    }

    // The peers' blocked sends end too: the mesh closed their connections.
    std::vector<std::atomic<bool>*> flags;
    for (auto& d : peer_done) flags.push_back(d.get());
    CHECK(join_all_by(peer_threads, flags, clock_type::now() + 2s));
    for (const auto& ec : peer_ends) CHECK(ec == errc::disconnected);
}

TEST_CASE("remove racing 8 sending threads: no crash, every result allowed") {
    mesh::Inproc transport;
    constexpr int rounds = 10;
    constexpr int senders = 8;
    std::atomic<int> bad{0}, bad_after_remove{0};
    std::array<std::atomic<std::uint64_t>, 4> tally{};  // ok, queue_full, not_found, disconnected

    for (int round = 0; round < rounds; ++round) {
        mesh::Mesh<mesh::Inproc, In16Out8> m;
        auto pair = connected_pair(transport, "race-" + std::to_string(round));
        m.add(std::move(pair.client), "x");
        const bool peer_disconnects = round % 3 == 2;

        // The peer reads for a while, so sends see both ok and queue_full.
        std::atomic<bool> stop_reading{false};
        std::thread reader([&] {
            Payload got;
            while (!stop_reading.load()) {
                const auto ec = pair.server.recv_for(got, 1ms);
                if (ec && ec != errc::timeout) break;
            }
        });

        std::atomic<std::uint64_t> attempts{0};
        std::atomic<bool> removed_flag{false};
        std::vector<std::thread> threads;
        for (int s = 0; s < senders; ++s) {
            threads.emplace_back([&, s, direct = m.connection_sender("x")]() mutable {
                // Half the threads look the id up per send; half use a bound sender.
                const auto send = [&](std::uint32_t i) {
                    return (s % 2 == 0) ? m.send("x", numbered(i)) : direct.send(numbered(i));
                };
                for (std::uint32_t i = 0; !removed_flag.load(); ++i) {
                    const auto result = send(i);
                    ++attempts;
                    if (!allowed_send_error(result.error)) ++bad;
                    if (!result.error) ++tally[0];
                    else if (result.error == errc::queue_full) ++tally[1];
                    else if (result.error == errc::not_found) ++tally[2];
                    else if (result.error == errc::disconnected) {
                        ++tally[3];
                        if (result.reason != errc::end_of_stream) ++bad;
                    }
                }
                // Once remove has returned, both kinds of sender say not_found.
                if (send(0).error != errc::not_found) ++bad_after_remove;
            });
        }
        CHECK(wait_until([&] { return attempts.load() > 2000; }, 5s));
        if (peer_disconnects) {
            stop_reading = true;
            reader.join();
            pair.server.disconnect();
        }
        std::error_code ec;
        auto removed = m.remove("x", ec);
        CHECK_FALSE(ec);
        removed_flag = true;
        for (auto& t : threads) t.join();
        if (!peer_disconnects) {
            stop_reading = true;
            reader.join();
            CHECK(removed.is_open());
        }
        CHECK(m.send("x", Payload{1}).error == errc::not_found);
    }
    CHECK(bad.load() == 0);
    CHECK(bad_after_remove.load() == 0);
    CHECK(tally[0].load() > 0);
    CHECK(tally[1].load() > 0);
}

TEST_CASE("incoming queue full: nothing is lost, the sender sees queue_full, delivery resumes") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, SenderSide> sender_mesh;
    mesh::Mesh<mesh::Inproc, Incoming16> receiver_mesh;
    auto pair = connected_pair(transport, "backpressure");
    sender_mesh.add(std::move(pair.client), "to_receiver");
    receiver_mesh.add(std::move(pair.server), "from_sender");

    constexpr std::uint32_t count = 20000;
    std::atomic<std::uint64_t> queue_full{0};
    std::atomic<std::uint32_t> sent{0};
    std::atomic<int> bad{0};
    std::thread sender([&] {
        auto direct = sender_mesh.connection_sender("to_receiver");
        for (std::uint32_t i = 0; i < count; ++i) {
            Payload payload = numbered(i);
            for (;;) {
                const auto result = direct.send(std::move(payload));
                if (result.ok()) break;
                if (result.error != errc::queue_full) {
                    ++bad;
                    return;
                }
                ++queue_full;
                std::this_thread::yield();
            }
            ++sent;
        }
    });

    // Nobody receives: the sender must be pushed back, and the receiving mesh must
    // stop reading once its queue is full (one message may wait in the reactor).
    CHECK(wait_until([&] { return queue_full.load() > 0; }, 10s));
    CHECK(sent.load() < count);
    CHECK(receiver_mesh.stats().messages_in <= Incoming16::incoming_capacity + 1);

    std::uint32_t received = 0;
    for (; received < count; ++received) {
        Envelope envelope;
        const auto ec = receiver_mesh.recv_timeout(envelope, 5s);
        if (ec) {
            FAIL_CHECK("recv failed after " << received << ": " << ec.message());
            break;
        }
        if (envelope.id != "from_sender" || number_of(envelope.payload) != received) {
            FAIL_CHECK("message " << received << " arrived as " << number_of(envelope.payload));
            break;
        }
    }
    sender.join();
    CHECK(bad.load() == 0);
    CHECK(received == count);
    CHECK(sent.load() == count);
    CHECK(sender_mesh.stats("to_receiver").rejected_full == queue_full.load());
    Envelope extra;
    CHECK(receiver_mesh.recv_timeout(extra, 20ms) == errc::timeout);
}

TEST_CASE("incoming queue full: a peer that sends and closes loses nothing, even if the mesh writes to it meanwhile") {
    mesh::Inproc transport;
    constexpr std::uint32_t count = 100;
    for (int round = 0; round < 10; ++round) {
        CAPTURE(round);
        mesh::Mesh<mesh::Inproc, Incoming16> m;
        auto pair = connected_pair(transport, "send-and-close");
        m.add(std::move(pair.client), "a");
        for (std::uint32_t i = 0; i < count; ++i) REQUIRE_FALSE(pair.server.send(numbered(i)));
        CHECK(wait_until([&] { return m.stats().messages_in >= Incoming16::incoming_capacity; }, 5s));
        pair.server.disconnect();
        // The write finds the peer gone while most of what it sent still waits to be read.
        const auto sent = m.send("a", Payload{1});
        CHECK((sent.ok() || sent.error == errc::disconnected));

        std::uint32_t received = 0;
        Envelope envelope;
        while (received < count && !m.recv_timeout(envelope, 2s) && number_of(envelope.payload) == received) ++received;
        CHECK(received == count);
        ConnectionEvent event;
        REQUIRE_FALSE(m.next_event(event, 5s));
        CHECK(event.id == "a");
        CHECK(event.reason == errc::end_of_stream);
        CHECK(event.discarded == (sent.ok() ? 1u : 0u));
        CHECK(m.next_event(event, 20ms) == errc::timeout);
        const auto after = m.send("a", Payload{1});
        CHECK(after.error == errc::disconnected);
        CHECK(after.reason == errc::end_of_stream);
    }
}

TEST_CASE("one disconnect event per connection when 50 peers go at once with the incoming queue full") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, Incoming16> m;
    constexpr int peers = 50;
    constexpr int talkers = 40;  // peers 40..49 send nothing
    constexpr std::uint32_t each = 4;
    std::vector<mesh_test::InprocPair> pairs;
    for (int p = 0; p < peers; ++p) {
        pairs.push_back(connected_pair(transport, "fifty-" + std::to_string(p)));
        m.add(std::move(pairs.back().server), "p" + std::to_string(p));
    }
    for (int p = 0; p < talkers; ++p)
        for (std::uint32_t i = 0; i < each; ++i)
            REQUIRE_FALSE(pairs[static_cast<std::size_t>(p)].client.send(numbered(static_cast<std::uint32_t>(p) * each + i)));
    CHECK(wait_until([&] { return m.stats().messages_in >= Incoming16::incoming_capacity; }, 5s));

    // All 50 go at once, from 5 threads.
    std::atomic<bool> go{false};
    std::vector<std::thread> closers;
    for (int t = 0; t < 5; ++t) {
        closers.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            for (int p = t; p < peers; p += 5) pairs[static_cast<std::size_t>(p)].client.disconnect();
        });
    }
    go = true;
    for (auto& t : closers) t.join();

    // The queue is full and nobody receives, yet the silent peers' ends are reported:
    // an event needs no room in the incoming queue. (A talker's end is reported once
    // what it sent before has been delivered, so that nothing it sent is lost.)
    std::vector<ConnectionEvent> events;
    ConnectionEvent event;
    std::set<std::string> silent_seen;
    CHECK(wait_until([&] {
        while (!m.try_event(event)) {
            events.push_back(event);
            if (std::stoi(event.id.substr(1)) >= talkers) silent_seen.insert(event.id);
        }
        return silent_seen.size() == static_cast<std::size_t>(peers - talkers);
    }, 5s));
    CHECK(m.stats().messages_in <= Incoming16::incoming_capacity + talkers);  // still not drained

    // Drain the messages while collecting the rest.
    std::atomic<std::uint32_t> received{0};
    std::atomic<int> bad{0};
    std::thread receiver([&, copy = m]() mutable {
        std::vector<std::uint32_t> next(peers);
        for (std::uint32_t p = 0; p < static_cast<std::uint32_t>(peers); ++p) next[p] = p * each;
        Envelope envelope;
        while (!copy.recv_timeout(envelope, 5s)) {
            const auto n = number_of(envelope.payload);
            const auto p = n / each;
            if (p >= static_cast<std::uint32_t>(peers) || envelope.id != "p" + std::to_string(p) || n != next[p]++)
                ++bad;
            if (++received == talkers * each) break;
        }
    });
    const auto deadline = clock_type::now() + 10s;
    while (events.size() < static_cast<std::size_t>(peers) && clock_type::now() < deadline)
        if (!m.next_event(event, 100ms)) events.push_back(event);
    receiver.join();
    // No second event for anyone.
    while (!m.next_event(event, 200ms)) events.push_back(event);

    CHECK(received.load() == talkers * each);
    CHECK(bad.load() == 0);
    CHECK(events.size() == static_cast<std::size_t>(peers));
    std::set<std::string> ids;
    for (const auto& e : events) {
        CHECK(e.kind == ConnectionEvent::Kind::disconnected);
        CHECK(e.reason == errc::end_of_stream);
        ids.insert(e.id);
    }
    CHECK(ids.size() == static_cast<std::size_t>(peers));
    for (int p = 0; p < peers; ++p) CHECK(m.send("p" + std::to_string(p), Payload{1}).error == errc::disconnected);
}

TEST_CASE("after an idle spell, 8 threads sending at once to one connection: everything arrives") {
    // Idle connections may give resources back after a quiet second or so; the first
    // sends after that race to take them again.
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, In16Out8> m;
    auto pair = connected_pair(transport, "idle");
    m.add(std::move(pair.client), "a");
    REQUIRE(m.send("a", numbered(0)).ok());
    Payload got;
    REQUIRE_FALSE(pair.server.recv_for(got, 5s));
    // Idle for a while: the quiet itself is what is tested, there is no condition to wait for.
    std::this_thread::sleep_for(2200ms);

    constexpr std::uint32_t per_thread = 500;
    constexpr std::uint32_t senders = 8;
    std::atomic<bool> go{false};
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < senders; ++t) {
        threads.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            for (std::uint32_t i = 0; i < per_thread; ++i) {
                Payload payload = numbered(t * per_thread + i);
                mesh::SendResult result;
                if (!mesh_test::spin_until([&] {
                        result = m.send("a", std::move(payload));
                        return result.error != errc::queue_full;
                    }, 5s) || !result.ok()) {
                    ++bad;
                    return;
                }
            }
        });
    }
    go = true;
    std::vector<std::uint32_t> next(senders);
    for (std::uint32_t t = 0; t < senders; ++t) next[t] = t * per_thread;
    std::uint32_t received = 0;
    for (; received < senders * per_thread; ++received) {
        if (pair.server.recv_for(got, 5s)) break;
        const auto n = number_of(got);
        if (n / per_thread >= senders || n != next[n / per_thread]++) ++bad;  // FIFO per sending thread
    }
    for (auto& t : threads) t.join();
    CHECK(bad.load() == 0);
    CHECK(received == senders * per_thread);
}

TEST_CASE("sending from other threads right after add, while the reactor takes the connection on") {
    mesh::Inproc transport;
    for (int round = 0; round < 20; ++round) {
        mesh::Mesh<mesh::Inproc, SmallMessages> m;
        auto pair = connected_pair(transport, "send-after-add");
        std::atomic<bool> added{false};
        std::atomic<int> bad{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; ++t) {
            threads.emplace_back([&, t, copy = m]() mutable {
                while (!added.load()) std::this_thread::yield();
                if (!copy.send("a", numbered(static_cast<std::uint32_t>(t))).ok()) ++bad;
                if (copy.send("a", Payload(SmallMessages::max_message_size + 1)).error != errc::message_too_large) ++bad;
            });
        }
        m.add(std::move(pair.client), "a");
        added = true;
        for (auto& t : threads) t.join();
        CHECK(bad.load() == 0);
        Payload got;
        CHECK_FALSE(pair.server.recv_for(got, 5s));
        CHECK_FALSE(pair.server.recv_for(got, 5s));
    }
}

TEST_CASE("8 threads adding one id: exactly one wins, the others get their connection back") {
    mesh::Inproc transport;
    Mesh m;
    constexpr int threads_n = 8;
    std::vector<mesh_test::InprocPair> pairs;
    for (int t = 0; t < threads_n; ++t) pairs.push_back(connected_pair(transport, "same-id-" + std::to_string(t)));
    std::vector<std::error_code> results(threads_n);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t) {
        threads.emplace_back([&, t, copy = m]() mutable {
            while (!go.load()) std::this_thread::yield();
            copy.add(std::move(pairs[static_cast<std::size_t>(t)].client), "same", results[static_cast<std::size_t>(t)]);
        });
    }
    go = true;
    for (auto& t : threads) t.join();
    int winners = 0;
    for (int t = 0; t < threads_n; ++t) {
        const auto& ec = results[static_cast<std::size_t>(t)];
        if (!ec) {
            ++winners;
            CHECK_FALSE(pairs[static_cast<std::size_t>(t)].client.is_open());
        } else {
            CHECK(ec == errc::duplicate_id);
            CHECK(pairs[static_cast<std::size_t>(t)].client.is_open());
        }
    }
    CHECK(winners == 1);
    CHECK(m.stats().connections == 1);
}

TEST_CASE("8 threads removing one id: exactly one gets the connection") {
    mesh::Inproc transport;
    for (int round = 0; round < 10; ++round) {
        Mesh m;
        auto pair = connected_pair(transport, "remove-once");
        m.add(std::move(pair.client), "x");
        std::atomic<bool> go{false};
        std::atomic<int> winners{0}, not_found{0}, other{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&, copy = m]() mutable {
                while (!go.load()) std::this_thread::yield();
                std::error_code ec;
                auto connection = copy.remove("x", ec);
                if (!ec && connection.is_open()) ++winners;
                else if (ec == errc::not_found) ++not_found;
                else ++other;
            });
        }
        go = true;
        for (auto& t : threads) t.join();
        CHECK(winners.load() == 1);
        CHECK(not_found.load() == 7);
        CHECK(other.load() == 0);
    }
}

TEST_CASE("8 threads calling shutdown at once: all return, one report counts the discarded") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc, In16Out8> m;
    auto pair = connected_pair(transport, "shutdown-many");
    m.add(std::move(pair.client), "a");
    std::size_t rejected = 0;
    const std::size_t accepted = mesh_test::fill_until_full(m, "a", rejected, 5ms);
    REQUIRE(mesh_test::settled(m, "a"));
    const std::size_t waiting = accepted - m.stats("a").messages_out;  // not yet written

    std::atomic<bool> go{false};
    std::atomic<std::size_t> discarded{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, copy = m]() mutable {
            while (!go.load()) std::this_thread::yield();
            discarded += copy.shutdown().discarded_outgoing;
        });
    }
    const auto start = clock_type::now();
    go = true;
    for (auto& t : threads) t.join();
    CHECK(clock_type::now() - start < 2s);
    CHECK(discarded.load() == waiting);
    CHECK(m.is_shut_down());
}

TEST_CASE("graceful shutdown while the peer reads: discarded + delivered == sent, every time") {
    // The flush deadline lands at varying points of the writer's progress.
    mesh::Inproc transport;
    for (int round = 0; round < 100; ++round) {
        CAPTURE(round);
        mesh::Mesh<mesh::Inproc, SenderSide> m;
        auto pair = connected_pair(transport, "flush-race");
        m.add(std::move(pair.client), "a");
        std::size_t rejected = 0;
        const std::size_t sent = mesh_test::fill_until_full(m, "a", rejected, 2ms);
        REQUIRE(sent >= SenderSide::outgoing_capacity);

        std::size_t delivered = 0;
        std::thread reader([&] {
            Payload got;
            while (!pair.server.recv_for(got, 5s)) {
                if (number_of(got) != delivered) break;
                ++delivered;
                if (delivered % 8 == 0)
                    for (int spin = 0; spin < 20; ++spin) std::this_thread::yield();  // read slowly
            }
        });
        const auto report = m.shutdown(std::chrono::microseconds(100 + 37 * round));
        reader.join();
        CHECK(report.discarded_outgoing + delivered == sent);
    }
}

TEST_CASE("shutdown racing sends, adds, removes and receives on many copies") {
    mesh::Inproc transport;
    constexpr int rounds = 5;
    std::atomic<int> bad{0};
    for (int round = 0; round < rounds; ++round) {
        mesh::Mesh<mesh::Inproc, In16Out8> m;
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        std::vector<std::unique_ptr<std::atomic<bool>>> done;
        const auto name = [&](int t, int i) { return "r" + std::to_string(round) + "-" + std::to_string(t) + "-" + std::to_string(i); };

        // Two threads add and remove their own connections, echoing peers attached.
        for (int t = 0; t < 2; ++t) {
            done.push_back(std::make_unique<std::atomic<bool>>(false));
            auto* flag = done.back().get();
            threads.emplace_back([&, t, flag, copy = m]() mutable {
                std::vector<mesh::InprocConnection> keep;
                for (int i = 0; !stop.load(); ++i) {
                    auto pair = connected_pair(transport, name(t, i));
                    (void)pair.server.send(numbered(static_cast<std::uint32_t>(i)));
                    keep.push_back(std::move(pair.server));
                    std::error_code ec;
                    copy.add(std::move(pair.client), "id" + std::to_string(t * 1000000 + i % 4), ec);
                    if (ec && ec != errc::duplicate_id && ec != errc::shut_down) ++bad;
                    (void)copy.remove("id" + std::to_string(t * 1000000 + (i + 2) % 4), ec);
                    if (ec && ec != errc::not_found && ec != errc::shut_down) ++bad;
                    if (keep.size() > 16) keep.erase(keep.begin());
                }
                *flag = true;
            });
        }
        // Four senders.
        for (int t = 0; t < 4; ++t) {
            done.push_back(std::make_unique<std::atomic<bool>>(false));
            auto* flag = done.back().get();
            threads.emplace_back([&, t, flag, copy = m]() mutable {
                for (std::uint32_t i = 0; !stop.load(); ++i) {
                    const auto result = copy.send("id" + std::to_string((t % 2) * 1000000 + i % 4), numbered(i));
                    if (!allowed_send_error(result.error) && result.error != errc::shut_down) ++bad;
                    if (result.error == errc::shut_down) break;
                }
                *flag = true;
            });
        }
        // Four receivers.
        for (int t = 0; t < 4; ++t) {
            done.push_back(std::make_unique<std::atomic<bool>>(false));
            auto* flag = done.back().get();
            threads.emplace_back([&, flag, copy = m]() mutable {
                Envelope envelope;
                for (;;) {
                    const auto ec = copy.recv_timeout(envelope, 10ms);
                    if (ec == errc::shut_down) break;
                    if (ec && ec != errc::timeout) ++bad;
                    if (!ec && envelope.id.empty()) ++bad;
                }
                *flag = true;
            });
        }
        CHECK(wait_until([&] { return m.stats().connections > 0; }, 5s));
        const auto start = clock_type::now();
        m.shutdown();
        CHECK(clock_type::now() - start < 2s);
        stop = true;
        std::vector<std::atomic<bool>*> flags;
        for (auto& d : done) flags.push_back(d.get());
        CHECK(join_all_by(threads, flags, clock_type::now() + 5s));
    }
    CHECK(bad.load() == 0);
}

} // TEST_SUITE
