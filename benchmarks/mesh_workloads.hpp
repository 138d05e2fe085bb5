// mesh_workloads.hpp - the mesh side of mesh_bench: the same workloads, shapes and timing
// rules as zmq_workloads.hpp (benchmarks/README.md describes W1-W4 and idle).
#pragma once

#include "bench_common.hpp"

#include <mesh/mesh.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace mesh_side {

using TcpMesh = mesh::Mesh<mesh::Tcp>;
using InprocMesh = mesh::Mesh<mesh::Inproc>;

constexpr double kStepTimeoutS = 60;

// A connected pair of connections of transport T (client end, server end).
template <class T>
std::pair<typename T::connection_type, typename T::connection_type> connect_pair(T& transport,
                                                                                 const std::string& bind) {
    auto listener = transport.listen(bind);
    typename T::connection_type server;
    std::thread acceptor([&] { server = listener.accept(); });
    auto client = transport.connect(listener.endpoint());
    acceptor.join();
    return {std::move(client), std::move(server)};
}

// Sends a copy of the caller's bytes through a connection sender, as ZeroMQ's side
// sends with zmq_send, waiting for room: benchmark senders never drop.
template <class Sender>
void send_retrying(Sender& sender, std::string_view bytes, bench::Deadline& deadline) {
    for (;;) {
        auto result = sender.send(bytes);
        if (result.ok()) return;
        if (result.error != mesh::errc::queue_full) throw bench::Error("send: " + result.error.message());
        if (deadline.expired()) throw bench::Error("send: no room for too long");
        std::this_thread::yield();
    }
}

template <class M>
void recv_or_throw(M& m, mesh::Envelope& out, const char* what) {
    if (auto ec = m.recv_timeout(out, std::chrono::seconds(10)))
        throw bench::Error(std::string(what) + ": " + ec.message());
}

// Envelopes a receiver takes per recv call (mesh_bench --recv-batch).
inline std::size_t recv_batch = 64;

// Receives exactly `count` envelopes into `batch` (recv_batch of them), as many per
// call as are queued.
template <class M>
void recv_count(M& m, std::vector<mesh::Envelope>& batch, std::uint64_t count, const char* what) {
    while (count > 0) {
        std::size_t taken = 0;
        const std::size_t room = static_cast<std::size_t>(std::min<std::uint64_t>(count, batch.size()));
        if (auto ec = m.recv_timeout(batch.data(), room, taken, std::chrono::seconds(10)))
            throw bench::Error(std::string(what) + ": " + ec.message());
        count -= taken;
    }
}

// One-way throughput: a sender thread on one mesh, a receiver thread on another.
template <class M, class T>
ThroughputResult one_way(T& transport, const std::string& bind, std::size_t size, std::uint64_t messages) {
    const std::uint64_t warmup = 10000;
    auto [client, server] = connect_pair(transport, bind);
    M sending, receiving;
    sending.add(std::move(client), "peer");
    receiving.add(std::move(server), "peer");
    auto sender = sending.connection_sender("peer");

    std::atomic<bool> warmed{false};
    std::int64_t t0 = 0, t1 = 0;
    std::uint64_t allocations = 0;
    std::thread receiver([&] {
        std::vector<mesh::Envelope> batch(recv_batch);
        recv_count(receiving, batch, warmup, "warm-up recv");
        warmed.store(true);
        recv_count(receiving, batch, messages, "recv");
        t1 = bench::now_ns();
        allocations = bench::alloc_counting_stop();
    });
    bench::Deadline deadline(kStepTimeoutS);
    const std::string bytes(size, 'x');
    for (std::uint64_t i = 0; i < warmup; ++i) send_retrying(sender, bytes, deadline);
    while (!warmed.load()) {
        if (deadline.expired()) break;
        std::this_thread::yield();
    }
    bench::alloc_counting_start();
    t0 = bench::now_ns();
    for (std::uint64_t i = 0; i < messages; ++i) send_retrying(sender, bytes, deadline);
    receiver.join();

    ThroughputResult r;
    r.msgs_per_s = static_cast<double>(messages) / bench::ns_to_s(t1 - t0);
    r.mb_per_s = r.msgs_per_s * static_cast<double>(size) / 1e6;
    // Counted over both threads: what the sender's copy allocates is counted too.
    r.allocs_per_msg = static_cast<double>(allocations) / static_cast<double>(messages);
    return r;
}

inline ThroughputResult mesh_w1(std::size_t size, std::uint64_t messages) {
    mesh::Tcp transport;
    return one_way<TcpMesh>(transport, "tcp://127.0.0.1:0", size, messages);
}

inline ThroughputResult mesh_w2(std::size_t size, std::uint64_t messages) {
    mesh::Inproc transport;
    return one_way<InprocMesh>(transport, "inproc://w2", size, messages);
}

// Round trips of 64 B over TCP: the echo side runs in its own thread on its own mesh.
inline LatencyResult mesh_w3(std::uint64_t round_trips, std::uint64_t warmup) {
    mesh::Tcp transport;
    auto [client, server] = connect_pair(transport, "tcp://127.0.0.1:0");
    TcpMesh near, far;
    near.add(std::move(client), "far");
    far.add(std::move(server), "near");
    std::thread echo([&] {
        mesh::Envelope envelope;
        while (!far.recv(envelope)) {
            if (!far.send(std::move(envelope)).ok()) break;
        }
    });
    auto sender = near.connection_sender("far");
    bench::Deadline deadline(kStepTimeoutS);
    std::vector<double> samples;
    samples.reserve(round_trips);
    const std::string ping(64, 'x');
    mesh::Envelope reply;
    for (std::uint64_t i = 0; i < warmup + round_trips; ++i) {
        const auto start = bench::now_ns();
        send_retrying(sender, ping, deadline);
        recv_or_throw(near, reply, "ping-pong recv");
        if (i >= warmup) samples.push_back(static_cast<double>(bench::now_ns() - start) / 1000.0);
    }
    far.shutdown();
    echo.join();
    std::sort(samples.begin(), samples.end());
    return {bench::percentile_sorted(samples, 0.50), bench::percentile_sorted(samples, 0.99),
            bench::percentile_sorted(samples, 0.999)};
}

// Fan-in: `conns` connections from a sending mesh into one receiving mesh that accepts
// them on its reactor; two sender threads each own half of them, sending round-robin.
inline ThroughputResult mesh_w4(std::size_t conns, std::uint64_t per_conn, std::size_t size) {
    mesh::Tcp transport;
    auto listener = transport.listen("tcp://127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    TcpMesh receiving, sending;
    // Short ids, as ZeroMQ's 5-byte routing ids: they fit std::string's small buffer,
    // so attaching the id to each received envelope allocates nothing.
    std::atomic<int> accepted{0};
    receiving.accept_from(std::move(listener), [&accepted](const mesh::TcpConnection&) {
        return "in" + std::to_string(accepted++);
    });
    std::vector<TcpMesh::ConnectionSender> senders;
    for (std::size_t i = 0; i < conns; ++i) {
        const std::string id = "c" + std::to_string(i);
        sending.add(transport.connect(endpoint), id);
        senders.push_back(sending.connection_sender(id));
    }
    bench::Deadline deadline(kStepTimeoutS);
    const std::string bytes(size, 'x');
    for (auto& s : senders) send_retrying(s, bytes, deadline);  // one hello each
    std::vector<mesh::Envelope> batch(recv_batch);
    recv_count(receiving, batch, conns, "hello recv");

    const std::uint64_t total = conns * per_conn;
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            bench::Deadline send_deadline(kStepTimeoutS);
            for (std::uint64_t n = 0; n < per_conn; ++n)
                for (std::size_t c = t; c < conns; c += 2)
                    send_retrying(senders[c], bytes, send_deadline);
        });
    bench::alloc_counting_start();
    const auto t0 = bench::now_ns();
    go.store(true);
    recv_count(receiving, batch, total, "fan-in recv");
    const auto t1 = bench::now_ns();
    const auto allocations = bench::alloc_counting_stop();
    for (auto& t : threads) t.join();

    ThroughputResult r;
    r.msgs_per_s = static_cast<double>(total) / bench::ns_to_s(t1 - t0);
    r.mb_per_s = r.msgs_per_s * static_cast<double>(size) / 1e6;
    r.allocs_per_msg = static_cast<double>(allocations) / static_cast<double>(total);
    return r;
}

// Memory per idle connection end: a server process (this one) accepting on its mesh's
// reactor and a forked client process, each measuring its own RSS growth after every
// connection carried one hello.
inline IdleResult mesh_idle(std::size_t conns) {
    if (bench::raise_nofile_limit() < conns + 200)
        throw bench::Error("idle: open-file limit too low for " + std::to_string(conns) + " connections");
    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0 || ::pipe2(up, O_CLOEXEC) != 0) throw bench::Error("idle: pipe failed");
    bench::Fd down_r{down[0]}, down_w{down[1]}, up_r{up[0]}, up_w{up[1]};

    mesh::Tcp transport;
    auto listener = transport.listen("tcp://127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    std::fflush(nullptr);
    bench::Child child;
    child.pid = ::fork();
    if (child.pid < 0) throw bench::Error("idle: fork failed");
    if (child.pid == 0) {
        double kib = -1;
        try {
            mesh::Tcp client_transport;
            TcpMesh m;
            const long base = bench::rss_kib();
            for (std::size_t i = 0; i < conns; ++i) {
                const std::string id = "c" + std::to_string(i);
                m.add(client_transport.connect(endpoint), id);
                if (!m.send(id, mesh::Payload(8)).ok()) throw bench::Error("idle client: send failed");
            }
            char go = 0;
            bench::read_all(down_r.fd, &go, 1, 120);  // the server has every hello
            bench::settle_idle();
            kib = static_cast<double>(bench::rss_kib() - base) / static_cast<double>(conns);
            bench::write_all(up_w.fd, &kib, sizeof kib);
            bench::read_all(down_r.fd, &go, 1, 120);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "idle client: %s\n", e.what());
            bench::write_all(up_w.fd, &kib, sizeof kib);
            ::_exit(1);
        }
        ::_exit(0);
    }
    IdleResult result;
    {
        TcpMesh m;
        const long base = bench::rss_kib();
        m.accept_from(std::move(listener));
        mesh::Envelope envelope;
        for (std::size_t i = 0; i < conns; ++i) recv_or_throw(m, envelope, "idle hello");
        bench::settle_idle();
        result.server_kib = static_cast<double>(bench::rss_kib() - base) / static_cast<double>(conns);
        char go = 'R';
        bench::write_all(down_w.fd, &go, 1);
        bench::read_all(up_r.fd, &result.client_kib, sizeof result.client_kib, 120);
        bench::write_all(down_w.fd, &go, 1);
    }
    if (!child.wait_exit(30) || result.client_kib < 0) throw bench::Error("idle: client process failed");
    return result;
}

}  // namespace mesh_side

inline ThroughputResult mesh_w1(std::size_t size, std::uint64_t messages) { return mesh_side::mesh_w1(size, messages); }
inline ThroughputResult mesh_w2(std::size_t size, std::uint64_t messages) { return mesh_side::mesh_w2(size, messages); }
inline LatencyResult mesh_w3(std::uint64_t round_trips, std::uint64_t warmup) {
    return mesh_side::mesh_w3(round_trips, warmup);
}
inline ThroughputResult mesh_w4(std::size_t conns, std::uint64_t per_conn, std::size_t size) {
    return mesh_side::mesh_w4(conns, per_conn, size);
}
inline IdleResult mesh_idle(std::size_t conns) { return mesh_side::mesh_idle(conns); }
