// Load: many connections at once, producers outrunning a consumer through small
// queues, and one flooding peer beside quiet ones. Each checks delivery exactly and
// prints what it measured; MESH_SOAK_SECONDS lengthens the producer run.
#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/process_stats.hpp"
#include "support/raw_peer.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;

using mesh_test::DescriptorLimit;
using mesh_test::resident_size_is_meaningful;
using mesh_test::sanitized;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}


#if defined(MESH_ECHO_PATH)
// `mesh_echo listen tcp://127.0.0.1:0` in a process of its own, started with
// posix_spawn (forking this multi-threaded process would copy its locks mid-use).
class EchoServerProcess {
public:
    EchoServerProcess() = default;
    EchoServerProcess(const EchoServerProcess&) = delete;
    EchoServerProcess& operator=(const EchoServerProcess&) = delete;
    ~EchoServerProcess() {
        if (pid_ > 0) stop();
        if (out_ >= 0) ::close(out_);
    }

    // Empty on success, else what went wrong.
    std::string start() {
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return "pipe2 failed";
        out_ = pipe_fds[0];
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
        std::string path = MESH_ECHO_PATH, mode = "listen", bind = "tcp://127.0.0.1:0";
        char* argv[] = {path.data(), mode.data(), bind.data(), nullptr};
        const int rc = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(pipe_fds[1]);
        if (rc != 0) {
            pid_ = -1;
            return "posix_spawn " + path + ": " + std::strerror(rc);
        }
        // The first line says where it listens.
        std::string line;
        const auto deadline = Clock::now() + 20s;
        while (line.find('\n') == std::string::npos) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return "no 'listening' line within 20 s";
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buffer[256];
            const ssize_t n = ::read(out_, buffer, sizeof buffer);
            if (n == 0) return "mesh_echo exited before listening";
            if (n > 0) line.append(buffer, static_cast<std::size_t>(n));
        }
        line.resize(line.find('\n'));
        const std::string prefix = "listening ";
        if (line.rfind(prefix, 0) != 0) return "unexpected first line: " + line;
        endpoint_ = line.substr(prefix.size());
        return {};
    }

    pid_t pid() const noexcept { return pid_; }
    const std::string& endpoint() const noexcept { return endpoint_; }

    // SIGTERM, then its exit status (-1 if it had to be killed or did not exit normally).
    int stop() {
        if (out_ >= 0) ::close(out_);
        out_ = -1;
        if (pid_ <= 0) return -1;
        ::kill(pid_, SIGTERM);
        int status = 0;
        const bool exited = mesh_test::wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 20s);
        if (!exited) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
        }
        pid_ = -1;
        return exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string endpoint_;
};
#endif

struct Percentiles {
    double p50 = 0, p99 = 0, max = 0;
    std::size_t count = 0;
};

Percentiles percentiles(std::vector<double> samples) {
    Percentiles p;
    p.count = samples.size();
    if (samples.empty()) return p;
    std::sort(samples.begin(), samples.end());
    auto at = [&](double q) {
        return samples[std::min(samples.size() - 1, static_cast<std::size_t>(q * static_cast<double>(samples.size())))];
    };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    p.max = samples.back();
    return p;
}

std::string describe(const Percentiles& p) {
    char text[160];
    std::snprintf(text, sizeof text, "%zu round trips: p50 %.0f us, p99 %.0f us, max %.0f us", p.count, p.p50, p.p99,
                  p.max);
    return text;
}

struct In64Out16 : mesh::DefaultConfig {
    static constexpr std::size_t outgoing_capacity = 16;
    static constexpr std::size_t incoming_capacity = 64;
};

} // namespace

TEST_SUITE("load") {

#if defined(MESH_ECHO_PATH)
TEST_CASE("10,000 TCP connections in one mesh: every message delivered, the reactors idle when the connections are") {
    constexpr std::size_t wanted = sanitized ? 2000 : 10000;
    // Our ends live here, the server's in mesh_echo: one process could not hold both.
    DescriptorLimit limit(static_cast<rlim_t>(wanted + 512));
    const std::size_t base_descriptors = mesh_test::open_descriptors();
    REQUIRE(limit.current() > base_descriptors + 1024);
    std::size_t connections = wanted;
    if (limit.current() < wanted + base_descriptors + 256) {
        connections = static_cast<std::size_t>(limit.current()) - base_descriptors - 256;
        MESSAGE("descriptor limit " << limit.current() << ": " << connections << " connections instead of " << wanted);
    }

    EchoServerProcess server;
    const std::string started = server.start();
    REQUIRE_MESSAGE(started.empty(), started);

    {
        mesh::Tcp tcp;
        mesh::Mesh<mesh::Tcp> client;
        auto id_of = [](std::size_t i) { return "c" + std::to_string(i); };

        // A few dialling threads overlap the handshakes' round trips; the server's
        // handshake limit (256 at once) is never reached.
        const auto connect_start = Clock::now();
        constexpr std::size_t dialers = 4;
        std::atomic<std::size_t> failed{0};
        std::mutex first_error_mutex;
        std::string first_error;
        std::vector<std::thread> threads;
        for (std::size_t d = 0; d < dialers; ++d) {
            threads.emplace_back([&, d] {
                for (std::size_t i = d; i < connections; i += dialers) {
                    std::error_code ec;
                    auto connection = tcp.connect(server.endpoint(), ec);
                    if (!ec) client.add(std::move(connection), id_of(i), ec);
                    if (ec) {
                        ++failed;
                        std::lock_guard<std::mutex> lock(first_error_mutex);
                        if (first_error.empty()) first_error = id_of(i) + ": " + ec.message();
                        return;
                    }
                }
            });
        }
        for (auto& t : threads) t.join();
        const double connect_seconds = seconds_since(connect_start);
        REQUIRE_MESSAGE(failed.load() == 0, first_error);
        REQUIRE(client.stats().connections == connections);

        constexpr std::size_t size = 64;
        const auto deliver_start = Clock::now();
        for (std::size_t i = 0; i < connections; ++i) {
            const auto result = client.send(id_of(i), mesh_test::numbered(static_cast<std::uint32_t>(i), size));
            REQUIRE_MESSAGE(result.ok(), id_of(i) << ": " << result.error.message());
        }
        std::vector<bool> seen(connections, false);
        std::size_t received = 0, wrong = 0, duplicates = 0;
        std::string first_wrong;
        mesh::Envelope echo;
        while (received < connections) {
            const auto ec = client.recv_timeout(echo, 20s);
            if (ec) {
                FAIL_CHECK("recv: " << ec.message() << " after " << received << " echoes");
                break;
            }
            const std::size_t i =
                echo.id.size() > 1 && echo.id[0] == 'c' ? std::strtoul(echo.id.c_str() + 1, nullptr, 10) : connections;
            if (i >= connections || echo.payload != mesh_test::numbered(static_cast<std::uint32_t>(i), size)) {
                if (wrong++ == 0)
                    first_wrong = echo.id + " carried " + std::to_string(mesh_test::number_of(echo.payload));
                continue;
            }
            if (seen[i]) ++duplicates;
            seen[i] = true;
            ++received;
        }
        const double deliver_seconds = seconds_since(deliver_start);
        const std::size_t client_peak = mesh_test::peak_resident_bytes();
        const std::size_t server_peak = mesh_test::peak_resident_bytes(std::to_string(server.pid()));
        CHECK_MESSAGE(wrong == 0, first_wrong);
        CHECK(duplicates == 0);
        CHECK(received == connections);
        CHECK(std::count(seen.begin(), seen.end(), true) == static_cast<std::ptrdiff_t>(connections));

        // Nothing moves now. One to two seconds after the last write each reactor gives
        // the idle connections' outgoing rings back, a one-off cost; past that, both
        // must sleep.
        const long per_second = mesh_test::clock_ticks_per_second();
        const auto settle_start = Clock::now();
        const mesh_test::ReactorClock reactor_since_echo;
        const std::uint64_t server_at_echo = mesh_test::process_cpu_ticks(server.pid());
        std::uint64_t reactor_seen = 0, server_seen = server_at_echo;
        auto quiet_since = Clock::now();
        const bool settled = mesh_test::wait_until([&] {
            const auto reactor_now = reactor_since_echo.ticks();
            const auto server_now = mesh_test::process_cpu_ticks(server.pid());
            if (reactor_now != reactor_seen || server_now != server_seen) {
                reactor_seen = reactor_now;
                server_seen = server_now;
                quiet_since = Clock::now();
            }
            // A ring is given back at the second sweep (a second apart) after its last
            // write: wait until both processes did that, then for a while without a tick.
            // (Sanitizers' allocators keep freed memory resident: there only our side tells.)
            return client.stats().queue_memory == 0 &&
                   (sanitized || mesh_test::resident_bytes(std::to_string(server.pid())) < server_peak / 2) &&
                   Clock::now() - settle_start > 2100ms && Clock::now() - quiet_since >= 300ms;
        }, 20s);
        const double settle_seconds = seconds_since(settle_start);
        CHECK(settled);
        const mesh_test::ReactorClock reactor_idle;
        const std::uint64_t server_before = mesh_test::process_cpu_ticks(server.pid());
        const auto idle_start = Clock::now();
        std::this_thread::sleep_for(1s);  // the measuring window
        const std::uint64_t reactor_ticks = reactor_idle.ticks();
        const std::uint64_t server_ticks = mesh_test::process_cpu_ticks(server.pid()) - server_before;
        const double idle_seconds = seconds_since(idle_start);
        const double ticks_in_window = static_cast<double>(per_second) * idle_seconds;
        const double reactor_share = static_cast<double>(reactor_ticks) / ticks_in_window;
        const double server_share = static_cast<double>(server_ticks) / ticks_in_window;
        MESSAGE(connections << " connections: connected and added in " << connect_seconds << " s, one echo each in "
                            << deliver_seconds << " s (peak resident: here " << client_peak / (1024 * 1024)
                            << " MiB, mesh_echo " << server_peak / (1024 * 1024) << " MiB); settled in "
                            << settle_seconds << " s (resident then: here "
                            << mesh_test::resident_bytes() / (1024 * 1024) << " MiB, mesh_echo "
                            << mesh_test::resident_bytes(std::to_string(server.pid())) / (1024 * 1024)
                            << " MiB; reactor " << reactor_seen
                            << " ticks, mesh_echo " << server_seen - server_at_echo << " ticks of " << per_second
                            << "/s); then idle for " << idle_seconds << " s: reactor " << 100.0 * reactor_share
                            << "% of a core, mesh_echo " << 100.0 * server_share << "%");
        CHECK(reactor_share < 0.05);
        CHECK(server_share < 0.05);

        const auto report = client.shutdown();
        CHECK(report.discarded_outgoing == 0);
        CHECK(report.discarded_incoming == 0);
    }
    CHECK(server.stop() == 0);
    CHECK(mesh_test::open_descriptors() <= base_descriptors);
}
#endif

TEST_CASE("producers faster than the consumer, small queues: every accepted message arrives once, in order") {
    const auto run_for = mesh_test::soak_duration(3s);
    constexpr std::size_t links = 4;
    constexpr std::size_t size = 48;
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, In64Out16> sender, receiver;
    for (std::size_t k = 0; k < links; ++k) {
        auto pair = mesh_test::tcp_pair(tcp);
        sender.add(std::move(pair.client), "to" + std::to_string(k));
        receiver.add(std::move(pair.server), "from" + std::to_string(k));
    }

    struct Tally {
        std::uint64_t attempted = 0, accepted = 0, rejected = 0, changed = 0;
        std::error_code other;  // any error but queue_full
    };
    std::vector<Tally> tallies(links);
    std::atomic<bool> stop_producing{false};

    // The consumer checks each connection's numbers: 0, 1, 2, ... with no gap.
    std::atomic<bool> slow{true}, quit{false};
    std::atomic<std::uint64_t> delivered{0};
    std::vector<std::uint32_t> expected(links, 0);
    std::uint64_t out_of_order = 0, unknown = 0, bad_size = 0;
    std::string first_out_of_order;
    std::thread consumer([&] {
        mesh::Envelope envelope;
        while (!quit.load()) {
            const auto ec = receiver.recv_timeout(envelope, 50ms);
            if (ec == mesh::errc::timeout) continue;
            if (ec) break;
            const std::size_t k = envelope.id.rfind("from", 0) == 0 ? std::strtoul(envelope.id.c_str() + 4, nullptr, 10)
                                                                    : links;
            if (k >= links) {
                ++unknown;
                continue;
            }
            if (envelope.payload.size() != size) ++bad_size;
            const std::uint32_t n = mesh_test::number_of(envelope.payload);
            if (n != expected[k] && out_of_order++ == 0)
                first_out_of_order = envelope.id + ": " + std::to_string(n) + " where " +
                                     std::to_string(expected[k]) + " was due";
            expected[k] = n + 1;
            delivered.fetch_add(1, std::memory_order_relaxed);
            if (slow.load(std::memory_order_relaxed)) std::this_thread::sleep_for(50us);  // the slow part
        }
    });

    std::vector<std::thread> producers;
    for (std::size_t k = 0; k < links; ++k) {
        producers.emplace_back([&, k] {
            Tally& t = tallies[k];
            const std::string id = "to" + std::to_string(k);
            std::uint32_t next = 0;
            mesh::Payload payload = mesh_test::numbered(next, size);
            while (!stop_producing.load(std::memory_order_relaxed)) {
                ++t.attempted;
                const auto result = sender.send(id, std::move(payload));
                if (result.ok()) {
                    ++t.accepted;
                    payload = mesh_test::numbered(++next, size);  // accepted ones are numbered without gaps
                } else if (result.error == mesh::errc::queue_full) {
                    ++t.rejected;
                    // Refused sends leave the payload with the caller, untouched.
                    if (payload.size() != size || mesh_test::number_of(payload) != next) {
                        ++t.changed;
                        payload = mesh_test::numbered(next, size);
                    }
                    std::this_thread::yield();
                } else {
                    t.other = result.error;
                    return;
                }
            }
        });
    }

    const auto start = Clock::now();
    std::this_thread::sleep_for(1s);  // the run itself: memory is sampled once it is under way
    const std::size_t resident_early = mesh_test::resident_bytes();
    std::this_thread::sleep_until(start + run_for);
    stop_producing.store(true);
    for (auto& p : producers) p.join();
    const double produced_seconds = seconds_since(start);

    Tally total;
    for (const auto& t : tallies) {
        total.attempted += t.attempted;
        total.accepted += t.accepted;
        total.rejected += t.rejected;
        total.changed += t.changed;
        CHECK_MESSAGE(!t.other, t.other.message());
    }
    const std::uint64_t delivered_by_stop = delivered.load();
    slow.store(false);  // now drain at full speed
    const auto drain_start = Clock::now();
    const bool drained = mesh_test::wait_until([&] { return delivered.load() >= total.accepted; }, 60s);
    const double drain_seconds = seconds_since(drain_start);
    // Anything beyond the accepted messages would arrive within this grace.
    mesh_test::wait_until([&] { return delivered.load() > total.accepted; }, 100ms);
    quit.store(true);
    consumer.join();
    const std::size_t resident_end = mesh_test::resident_bytes();

    const double share =
        total.attempted ? static_cast<double>(total.rejected) / static_cast<double>(total.attempted) : 0;
    MESSAGE("in " << produced_seconds << " s: " << total.attempted / produced_seconds << " sends/s attempted, "
                  << total.accepted / produced_seconds << " accepted/s, " << 100.0 * share
                  << "% rejected as full; " << delivered_by_stop << " of " << total.accepted
                  << " delivered by the stop, the rest drained in " << drain_seconds << " s; resident "
                  << resident_early / 1024 << " KiB after 1 s, " << resident_end / 1024 << " KiB at the end");
    CHECK(drained);
    CHECK(total.attempted == total.accepted + total.rejected);
    CHECK(total.accepted > 0);
    CHECK(total.rejected > 0);  // the producers did outrun the consumer
    CHECK(total.changed == 0);
    CHECK(delivered.load() == total.accepted);
    CHECK_MESSAGE(out_of_order == 0, first_out_of_order);
    CHECK(unknown == 0);
    CHECK(bad_size == 0);
    for (std::size_t k = 0; k < links; ++k) {
        CAPTURE(k);
        CHECK(expected[k] == tallies[k].accepted);
    }
    const auto sent = sender.stats();
    CHECK(sent.rejected_full == total.rejected);
    CHECK(sent.messages_out == total.accepted);
    CHECK(sent.queue_depth == 0);
    CHECK(sent.discarded == 0);
    CHECK(receiver.stats().messages_in == total.accepted);
    if (resident_size_is_meaningful) {
        CAPTURE(resident_early);
        CAPTURE(resident_end);
        CHECK(resident_end < resident_early + 16 * 1024 * 1024);
    }
}

TEST_CASE("one flooding peer does not starve 20 quiet peers") {
    constexpr std::size_t quiet_peers = 20;
    constexpr int rounds = sanitized ? 50 : 100;
    constexpr std::size_t size = 64;
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp> server;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));

    // Echoes everything; a full queue (the flooder's, which never reads) drops it.
    std::atomic<std::uint64_t> echoed{0}, dropped{0}, failed{0};
    std::thread echo([&] {
        mesh::Envelope envelope;
        while (!server.recv(envelope)) {
            const auto result = server.send(std::move(envelope));
            if (result.ok()) ++echoed;
            else if (result.error == mesh::errc::queue_full) ++dropped;
            else ++failed;  // the flooder is gone at the very end
        }
    });

    std::vector<mesh::TcpConnection> quiet;
    for (std::size_t i = 0; i < quiet_peers; ++i) quiet.push_back(tcp.connect(endpoint));
    REQUIRE(mesh_test::wait_until([&] { return server.stats().connections == quiet_peers; }));

    // Every quiet peer does `rounds` round trips, 2 ms apart; returns the RTTs in us.
    std::atomic<int> lost{0};
    auto measure = [&](int phase) {
        std::vector<std::vector<double>> rtts(quiet_peers);
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < quiet_peers; ++i) {
            threads.emplace_back([&, i] {
                for (int r = 0; r < rounds; ++r) {
                    mesh::Payload request(size, static_cast<std::uint8_t>(i));
                    request[1] = static_cast<std::uint8_t>(phase);
                    request[2] = static_cast<std::uint8_t>(r);
                    request[3] = static_cast<std::uint8_t>(r >> 8);
                    const auto sent_at = Clock::now();
                    mesh::Payload reply;
                    if (quiet[i].send(request) || quiet[i].recv_for(reply, 20s) || reply != request) {
                        ++lost;
                        return;
                    }
                    rtts[i].push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent_at).count());
                    std::this_thread::sleep_for(2ms);  // quiet: a round trip now and then
                }
            });
        }
        for (auto& t : threads) t.join();
        std::vector<double> all;
        for (const auto& r : rtts) all.insert(all.end(), r.begin(), r.end());
        return percentiles(std::move(all));
    };

    const Percentiles baseline = measure(0);
    REQUIRE(lost.load() == 0);

    auto flood = tcp.connect(endpoint);
    std::atomic<bool> stop_flood{false};
    std::atomic<std::uint64_t> flooded{0};
    std::thread flooder([&] {
        const mesh::Payload message(size, 0xF1);
        while (!stop_flood.load(std::memory_order_relaxed)) {
            if (flood.send(message)) return;  // the server went away
            flooded.fetch_add(1, std::memory_order_relaxed);
        }
    });
    // The flood is on once its echoes no longer fit: the flooder never reads.
    const bool flooding = mesh_test::wait_until([&] { return dropped.load() > 0; }, 20s);
    const std::uint64_t flooded_before = flooded.load();
    const auto flood_start = Clock::now();
    const Percentiles loaded = measure(1);
    const double flood_rate = static_cast<double>(flooded.load() - flooded_before) / seconds_since(flood_start);

    stop_flood.store(true);
    server.shutdown();  // also ends a flooder blocked in send
    echo.join();
    flooder.join();

    // Starved, a quiet peer would wait seconds (or time out). Served fairly it waits
    // behind at most a few incoming queues of flood messages: measured on a loaded
    // 2-core machine, a flood p99 of 28-41 ms (Debug), 92 ms (TSan), 11 ms (ASan).
    const double bound = std::max(20.0 * baseline.p99, (sanitized ? 500.0 : 250.0) * 1000.0);
    MESSAGE("baseline: " << describe(baseline));
    MESSAGE("flood (" << flood_rate << " msg/s from the flooder, " << dropped.load()
                      << " echoes dropped as full): " << describe(loaded));
    MESSAGE("bound on the flood p99: " << bound << " us");
    CHECK(flooding);
    CHECK(lost.load() == 0);
    CHECK(loaded.count == quiet_peers * static_cast<std::size_t>(rounds));
    CHECK(loaded.p99 < bound);
}

} // TEST_SUITE("load")
