// zmq_workloads.hpp - the ZeroMQ side of mesh_bench (workloads W1-W4 and idle, described in
// benchmarks/README.md). Requires libzmq (MESH_BENCH_HAVE_ZMQ).
//
// Settings common to all workloads: ZeroMQ 4.3 C API, 1 I/O thread per context, SNDHWM = RCVHWM
// = 1000, loopback 127.0.0.1 only, ports chosen by the kernel ("tcp://127.0.0.1:*" then
// ZMQ_LAST_ENDPOINT), ZMQ_LINGER 0. Over TCP each side has its own context, as two processes
// would. Messages are sent with zmq_send (it copies the caller's buffer into a new message, as
// typical application code does) and received with zmq_msg_recv into a reused zmq_msg_t (no
// copy out, as libzmq's own perf tools do).
//
// Every blocking call is bounded: sockets use a short ZMQ_SNDTIMEO/ZMQ_RCVTIMEO slice
// (kSliceMs); on each expiry the loop checks whether another thread failed, the workload's
// deadline, and a per-operation limit (kOpTimeoutS); any of these ends the workload with a
// bench::Error naming the loop.

#pragma once

#include "bench_common.hpp"

#include <zmq.h>

#include <cerrno>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace zmq_side {

constexpr int kHwm = 1000;
constexpr int kSliceMs = 100;          // blocking slice of one zmq_send / zmq_recv call
constexpr double kOpTimeoutS = 10;     // one send or receive may block at most this long
constexpr std::uint64_t kWarmup = 10000;  // W1/W2 warm-up messages

[[noreturn]] inline void fail_errno(const std::string& what) {
    throw bench::Error(what + ": " + zmq_strerror(zmq_errno()));
}

// ----- RAII wrappers --------------------------------------------------------------------------

class Context {
public:
    explicit Context(int io_threads = 1, int max_sockets = 0) {
        ctx_ = zmq_ctx_new();
        if (!ctx_) fail_errno("zmq_ctx_new");
        if (zmq_ctx_set(ctx_, ZMQ_IO_THREADS, io_threads) != 0) fail_errno("ZMQ_IO_THREADS");
        if (max_sockets > 0 && zmq_ctx_set(ctx_, ZMQ_MAX_SOCKETS, max_sockets) != 0)
            fail_errno("ZMQ_MAX_SOCKETS");
    }
    ~Context() {
        if (ctx_) zmq_ctx_term(ctx_);  // all sockets are closed (linger 0) before this runs
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    void* get() const { return ctx_; }

private:
    void* ctx_ = nullptr;
};

class Socket {
public:
    Socket(Context& ctx, int type) {
        s_ = zmq_socket(ctx.get(), type);
        if (!s_) fail_errno("zmq_socket");
        set(ZMQ_LINGER, 0);
        set(ZMQ_SNDTIMEO, kSliceMs);
        set(ZMQ_RCVTIMEO, kSliceMs);
        set(ZMQ_SNDHWM, kHwm);
        set(ZMQ_RCVHWM, kHwm);
    }
    ~Socket() { close(); }
    Socket(Socket&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    Socket& operator=(Socket&& o) noexcept {
        if (this != &o) {
            close();
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    void close() {
        if (s_) zmq_close(s_);
        s_ = nullptr;
    }
    void* get() const { return s_; }

    void set(int option, int value) {
        if (zmq_setsockopt(s_, option, &value, sizeof value) != 0)
            fail_errno("zmq_setsockopt " + std::to_string(option));
    }
    void bind(const std::string& ep) {
        if (zmq_bind(s_, ep.c_str()) != 0) fail_errno("zmq_bind " + ep);
    }
    void connect(const std::string& ep) {
        if (zmq_connect(s_, ep.c_str()) != 0) fail_errno("zmq_connect " + ep);
    }
    // Binds to a kernel-chosen loopback port and returns the actual endpoint.
    std::string bind_loopback_any() {
        bind("tcp://127.0.0.1:*");
        char buf[256];
        size_t len = sizeof buf;
        if (zmq_getsockopt(s_, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
            fail_errno("ZMQ_LAST_ENDPOINT");
        return std::string(buf);
    }

private:
    void* s_ = nullptr;
};

// A zmq_msg_t that is always closed.
struct Msg {
    zmq_msg_t m;
    Msg() { zmq_msg_init(&m); }
    ~Msg() { zmq_msg_close(&m); }
    Msg(const Msg&) = delete;
    Msg& operator=(const Msg&) = delete;
};

// ----- bounded send / receive -----------------------------------------------------------------

// Blocking send of a copy of buf, bounded by kOpTimeoutS, the guard's deadline and failures.
inline void send_copy(void* s, const void* buf, std::size_t n, int flags, bench::Guard& guard,
                      const char* where) {
    std::int64_t started = 0;
    for (;;) {
        if (zmq_send(s, buf, n, flags) >= 0) return;
        int e = zmq_errno();
        if (e != EAGAIN && e != EINTR) fail_errno(std::string(where) + ": zmq_send");
        guard.check(where);
        std::int64_t t = bench::now_ns();
        if (!started) started = t;
        if (bench::ns_to_s(t - started) > kOpTimeoutS)
            throw bench::Error(std::string(where) + ": zmq_send blocked for more than " +
                               std::to_string(static_cast<int>(kOpTimeoutS)) + " s");
    }
}

// Blocking send of a message (consumed on success), bounded like send_copy.
inline void send_msg(void* s, zmq_msg_t* m, int flags, bench::Guard& guard, const char* where) {
    std::int64_t started = 0;
    for (;;) {
        if (zmq_msg_send(m, s, flags) >= 0) return;
        int e = zmq_errno();
        if (e != EAGAIN && e != EINTR) fail_errno(std::string(where) + ": zmq_msg_send");
        guard.check(where);
        std::int64_t t = bench::now_ns();
        if (!started) started = t;
        if (bench::ns_to_s(t - started) > kOpTimeoutS)
            throw bench::Error(std::string(where) + ": zmq_msg_send blocked for more than " +
                               std::to_string(static_cast<int>(kOpTimeoutS)) + " s");
    }
}

// Blocking receive into m; returns the frame size. Bounded like send_copy.
inline std::size_t recv_msg(void* s, zmq_msg_t* m, bench::Guard& guard, const char* where,
                            double op_timeout_s = kOpTimeoutS) {
    std::int64_t started = 0;
    for (;;) {
        int rc = zmq_msg_recv(m, s, 0);
        if (rc >= 0) return static_cast<std::size_t>(rc);
        int e = zmq_errno();
        if (e != EAGAIN && e != EINTR) fail_errno(std::string(where) + ": zmq_msg_recv");
        guard.check(where);
        std::int64_t t = bench::now_ns();
        if (!started) started = t;
        if (bench::ns_to_s(t - started) > op_timeout_s)
            throw bench::Error(std::string(where) + ": nothing received for " +
                               std::to_string(static_cast<int>(op_timeout_s)) + " s");
    }
}

// Receives one message of the expected size (throws on a different size).
inline void recv_expect(void* s, zmq_msg_t* m, std::size_t size, bench::Guard& guard,
                        const char* where) {
    std::size_t n = recv_msg(s, m, guard, where);
    if (n != size)
        throw bench::Error(std::string(where) + ": got " + std::to_string(n) +
                           " B, expected " + std::to_string(size));
}

// Generous time limit for moving `messages` messages of `size` bytes (~10x ZeroMQ's time on the reference machine).
inline double deadline_for(std::uint64_t messages, std::size_t size) {
    return 60 + 10.0 * static_cast<double>(messages) *
                    (3e-7 + 1e-9 * static_cast<double>(size));
}

inline ThroughputResult make_throughput(std::uint64_t messages, std::size_t size,
                                        std::int64_t t0, std::int64_t t1, std::uint64_t allocs) {
    ThroughputResult r;
    double s = bench::ns_to_s(t1 - t0);
    if (s <= 0 || messages == 0) return r;
    r.msgs_per_s = static_cast<double>(messages) / s;
    r.mb_per_s = r.msgs_per_s * static_cast<double>(size) / 1e6;
    r.allocs_per_msg = static_cast<double>(allocs) / static_cast<double>(messages);
    return r;
}

// ----- W1 / W2: one-way throughput, PUSH -> PULL ----------------------------------------------

// One sender thread, one receiver thread. `warmup` messages go first; when the receiver has
// them all, the sender starts the clock (and the allocation counter) and sends `messages`
// more; the clock stops when the receiver has the last one.
inline ThroughputResult throughput(bool tcp, std::size_t size, std::uint64_t messages,
                                   std::uint64_t warmup = kWarmup) {
    static std::atomic<unsigned> inproc_seq{0};
    bench::Guard guard(deadline_for(messages + warmup, size));

    Context ctx_recv(1);
    std::unique_ptr<Context> ctx_send_own;
    if (tcp) ctx_send_own = std::make_unique<Context>(1);
    Context& ctx_send = tcp ? *ctx_send_own : ctx_recv;

    Socket pull(ctx_recv, ZMQ_PULL);
    Socket push(ctx_send, ZMQ_PUSH);
    std::string ep;
    if (tcp) {
        ep = pull.bind_loopback_any();
    } else {
        ep = "inproc://mesh-bench-thr-" + std::to_string(inproc_seq.fetch_add(1));
        pull.bind(ep);
    }
    push.connect(ep);

    std::atomic<bool> warm_done{false};
    std::int64_t t0 = 0, t1 = 0;
    std::uint64_t allocs = 0;

    std::thread sender([&] {
        guard.run([&] {
            std::vector<char> buf(size, 'm');
            for (std::uint64_t i = 0; i < warmup; ++i) {
                if ((i & 1023) == 0) guard.check("W1/W2 sender warm-up");
                send_copy(push.get(), buf.data(), size, 0, guard, "W1/W2 sender warm-up");
            }
            guard.wait_for(warm_done, "W1/W2 sender waiting for warm-up receipt");
            bench::alloc_counting_start();
            t0 = bench::now_ns();
            for (std::uint64_t i = 0; i < messages; ++i) {
                if ((i & 1023) == 0) guard.check("W1/W2 sender");
                send_copy(push.get(), buf.data(), size, 0, guard, "W1/W2 sender");
            }
        });
    });
    std::thread receiver([&] {
        guard.run([&] {
            Msg m;
            for (std::uint64_t i = 0; i < warmup; ++i)
                recv_expect(pull.get(), &m.m, size, guard, "W1/W2 receiver warm-up");
            warm_done.store(true, std::memory_order_release);
            for (std::uint64_t i = 0; i < messages; ++i) {
                if ((i & 1023) == 0) guard.check("W1/W2 receiver");
                recv_expect(pull.get(), &m.m, size, guard, "W1/W2 receiver");
            }
            t1 = bench::now_ns();
            allocs = bench::alloc_counting_stop();
        });
    });
    sender.join();
    receiver.join();
    if (bench::alloc_counting_active()) bench::alloc_counting_stop();
    guard.rethrow();
    return make_throughput(messages, size, t0, t1, allocs);
}

inline ThroughputResult w1(std::size_t size, std::uint64_t messages) {
    return throughput(true, size, messages);
}
inline ThroughputResult w2(std::size_t size, std::uint64_t messages) {
    return throughput(false, size, messages);
}

// ----- W3: round-trip latency, DEALER <-> DEALER over TCP ------------------------------------

// The echo side binds (its own context and thread); the client connects from the calling
// thread, sends `size` bytes, waits for the echo and records the round-trip time. The first
// `warmup` round trips are not recorded.
inline LatencyResult w3(std::uint64_t round_trips, std::uint64_t warmup, std::size_t size = 64) {
    bench::Guard guard(60 + 0.01 * static_cast<double>(round_trips + warmup));
    Context ctx_echo(1), ctx_client(1);
    Socket echo(ctx_echo, ZMQ_DEALER);
    Socket client(ctx_client, ZMQ_DEALER);
    std::string ep = echo.bind_loopback_any();
    client.connect(ep);
    const std::uint64_t total = warmup + round_trips;

    std::thread echo_thread([&] {
        guard.run([&] {
            Msg m;
            for (std::uint64_t i = 0; i < total; ++i) {
                recv_expect(echo.get(), &m.m, size, guard, "W3 echo receive");
                send_msg(echo.get(), &m.m, 0, guard, "W3 echo send");
            }
        });
    });

    std::vector<double> rtt_us;
    rtt_us.reserve(round_trips);
    guard.run([&] {
        std::vector<char> buf(size, 'p');
        Msg reply;
        for (std::uint64_t i = 0; i < total; ++i) {
            std::int64_t t = bench::now_ns();
            send_copy(client.get(), buf.data(), size, 0, guard, "W3 client send");
            recv_expect(client.get(), &reply.m, size, guard, "W3 client receive");
            std::int64_t dt = bench::now_ns() - t;
            if (i >= warmup) rtt_us.push_back(static_cast<double>(dt) / 1e3);
            if ((i & 255) == 0) guard.check("W3 client");
        }
    });
    echo_thread.join();
    guard.rethrow();

    std::sort(rtt_us.begin(), rtt_us.end());
    LatencyResult r;
    r.p50_us = bench::percentile_sorted(rtt_us, 0.50);
    r.p99_us = bench::percentile_sorted(rtt_us, 0.99);
    r.p999_us = bench::percentile_sorted(rtt_us, 0.999);
    return r;
}

// ----- W4: fan-in, `conns` DEALERs -> one ROUTER ---------------------------------------------

// Two sender threads each own half of the DEALERs (client context, 1 I/O thread) and send
// round-robin over them, `per_conn` messages per DEALER; one thread receives on the ROUTER
// (server context, 1 I/O thread). Before timing, every DEALER sends one hello and the receiver
// waits for all of them, so every connection is up; the clock (and the allocation counter)
// starts when the senders are released and stops at the last receipt.
inline ThroughputResult w4(std::size_t conns, std::uint64_t per_conn, std::size_t size,
                           std::size_t sender_threads = 2) {
    if (conns == 0) throw bench::Error("W4: conns must be > 0");
    if (sender_threads > conns) sender_threads = conns;
    const std::uint64_t messages = static_cast<std::uint64_t>(conns) * per_conn;
    bench::Guard guard(deadline_for(messages, size));

    Context ctx_server(1);
    Context ctx_client(1, static_cast<int>(conns + 64));
    Socket router(ctx_server, ZMQ_ROUTER);
    router.set(ZMQ_BACKLOG, 1024);
    std::string ep = router.bind_loopback_any();
    std::vector<Socket> dealers;
    dealers.reserve(conns);
    for (std::size_t i = 0; i < conns; ++i) {
        dealers.emplace_back(ctx_client, ZMQ_DEALER);
        dealers.back().connect(ep);
    }

    std::atomic<bool> go{false};
    std::int64_t t0 = 0, t1 = 0;
    std::uint64_t allocs = 0;

    std::vector<std::thread> senders;
    for (std::size_t t = 0; t < sender_threads; ++t) {
        senders.emplace_back([&, t] {
            guard.run([&] {
                std::size_t begin = conns * t / sender_threads;
                std::size_t end = conns * (t + 1) / sender_threads;
                std::vector<char> buf(size, 'f');
                const char hello[] = "hello";
                for (std::size_t d = begin; d < end; ++d)
                    send_copy(dealers[d].get(), hello, sizeof hello, 0, guard, "W4 hello");
                guard.wait_for(go, "W4 sender waiting for start");
                for (std::uint64_t r = 0; r < per_conn; ++r) {
                    if ((r & 63) == 0) guard.check("W4 sender");
                    for (std::size_t d = begin; d < end; ++d)
                        send_copy(dealers[d].get(), buf.data(), size, 0, guard, "W4 sender");
                }
            });
        });
    }
    std::thread receiver([&] {
        guard.run([&] {
            Msg id, body;
            auto recv_one = [&](const char* where) {
                recv_msg(router.get(), &id.m, guard, where);
                if (!zmq_msg_more(&id.m))
                    throw bench::Error(std::string(where) + ": routing id without body");
                return recv_msg(router.get(), &body.m, guard, where);
            };
            for (std::size_t i = 0; i < conns; ++i) recv_one("W4 receiving hellos");
            bench::alloc_counting_start();
            t0 = bench::now_ns();
            go.store(true, std::memory_order_release);
            for (std::uint64_t i = 0; i < messages; ++i) {
                if ((i & 1023) == 0) guard.check("W4 receiver");
                if (recv_one("W4 receiver") != size)
                    throw bench::Error("W4 receiver: unexpected message size");
            }
            t1 = bench::now_ns();
            allocs = bench::alloc_counting_stop();
        });
    });
    for (auto& s : senders) s.join();
    receiver.join();
    if (bench::alloc_counting_active()) bench::alloc_counting_stop();
    guard.rethrow();
    return make_throughput(messages, size, t0, t1, allocs);
}

// ----- idle: memory per idle connection -------------------------------------------------------
//
// What we measure: the RSS growth of each process divided by the number of connections, after
// every connection carried one small hello (so both ends finished the ZMTP handshake and
// allocated their per-connection buffers).
//
// Layout: the server process (the caller) has one ROUTER bound on
// P = min(100, N) loopback ports; the client process (forked child) has N/P DEALERs, each
// connected to all P ports (plus, if P does not divide N, one more DEALER connected to the first
// N mod P ports), so there are exactly N TCP connections and at most 100 connections per port.
// A DEALER load-balances outgoing messages round-robin over its connections, so sending P hellos
// on a DEALER puts exactly one on each connection; the server checks that it saw N distinct
// routing ids. Baselines are taken after each side's fixed setup (context; server: ROUTER and
// binds) and before any connection exists, so the client's figure includes its N/P sockets.
//
// mesh_bench runs this in a freshly exec'd process (mesh_bench --idle-child zmq N), so no freed
// but still resident heap memory from earlier workloads hides part of the growth.
//
// Synchronisation between the processes uses two pipes (endpoints down, "all received" down,
// client figure up, "exit" down); every read is bounded by poll() timeouts and the child is
// killed (SIGKILL, by pid) if anything goes wrong. The open-file limit is raised to the hard
// limit first (each process needs about N descriptors).

namespace detail {



struct ClientReport {
    std::int32_t ok = 0;
    double kib_per_conn = 0;
    char message[240] = {};
};

constexpr double kIdleStepTimeoutS = 120;

// The client process. Never returns.
[[noreturn]] inline void idle_client(int rd, int wr, std::size_t conns) {
    ClientReport rep;
    try {
        std::uint32_t nports = 0;
        bench::read_all(rd, &nports, sizeof nports, kIdleStepTimeoutS);
        std::vector<std::string> eps(nports);
        for (auto& e : eps) {
            std::uint32_t len = 0;
            bench::read_all(rd, &len, sizeof len, kIdleStepTimeoutS);
            if (len > 1024) throw bench::Error("idle client: bad endpoint length");
            e.resize(len);
            bench::read_all(rd, e.data(), len, kIdleStepTimeoutS);
        }
        const std::size_t full = conns / nports, rest = conns % nports;
        const std::size_t ndealers = full + (rest ? 1 : 0);

        Context ctx(1, static_cast<int>(ndealers + 64));
        long base = bench::rss_kib();
        {
            bench::Guard guard(kIdleStepTimeoutS);
            std::vector<Socket> dealers;
            dealers.reserve(ndealers);
            const char hello[] = "hi";
            for (std::size_t d = 0; d < ndealers; ++d) {
                dealers.emplace_back(ctx, ZMQ_DEALER);
                std::size_t nconn = d < full ? nports : rest;
                for (std::size_t p = 0; p < nconn; ++p) dealers.back().connect(eps[p]);
                for (std::size_t p = 0; p < nconn; ++p)
                    send_copy(dealers.back().get(), hello, sizeof hello, 0, guard,
                              "idle client hello");
            }
            char go = 0;
            bench::read_all(rd, &go, 1, kIdleStepTimeoutS);  // server got every hello
            if (go != 'R') throw bench::Error("idle client: server reported a failure");
            bench::settle_idle();
            long after = bench::rss_kib();
            rep.ok = 1;
            rep.kib_per_conn = static_cast<double>(after - base) / static_cast<double>(conns);
            bench::write_all(wr, &rep, sizeof rep);
            bench::read_all(rd, &go, 1, kIdleStepTimeoutS);  // 'X': exit
        }
        ::_exit(0);
    } catch (const std::exception& e) {
        rep.ok = 0;
        std::snprintf(rep.message, sizeof rep.message, "%s", e.what());
    } catch (...) {
        rep.ok = 0;
        std::snprintf(rep.message, sizeof rep.message, "unknown exception");
    }
    try {
        bench::write_all(wr, &rep, sizeof rep);
    } catch (...) {
    }
    ::_exit(1);
}



}  // namespace detail

inline IdleResult idle(std::size_t conns) {
    if (conns == 0) throw bench::Error("idle: conns must be > 0");
    std::uint64_t limit = bench::raise_nofile_limit();
    if (limit < conns + 200)
        throw bench::Error("idle: open-file limit " + std::to_string(limit) + " too low for " +
                           std::to_string(conns) + " connections");
    const std::size_t nports = std::min<std::size_t>(100, conns);

    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0) throw bench::Error("idle: pipe failed");
    bench::Fd down_r{down[0]}, down_w{down[1]};
    if (::pipe2(up, O_CLOEXEC) != 0) throw bench::Error("idle: pipe failed");
    bench::Fd up_r{up[0]}, up_w{up[1]};

    std::fflush(nullptr);  // no duplicated stdio buffers in the child
    bench::Child child;
    child.pid = ::fork();
    if (child.pid < 0) throw bench::Error("idle: fork failed");
    if (child.pid == 0) {
        down_w.reset();
        up_r.reset();
        detail::idle_client(down_r.fd, up_w.fd, conns);  // never returns
    }
    down_r.reset();
    up_w.reset();

    IdleResult result;
    std::string child_error;
    {
        bench::Guard guard(detail::kIdleStepTimeoutS);
        Context ctx(1);
        Socket router(ctx, ZMQ_ROUTER);
        router.set(ZMQ_BACKLOG, 4096);
        std::vector<std::string> eps;
        for (std::size_t p = 0; p < nports; ++p) eps.push_back(router.bind_loopback_any());
        std::vector<std::uint64_t> ids;
        ids.reserve(conns);
        long base = bench::rss_kib();

        std::uint32_t n = static_cast<std::uint32_t>(nports);
        bench::write_all(down_w.fd, &n, sizeof n);
        for (const auto& e : eps) {
            std::uint32_t len = static_cast<std::uint32_t>(e.size());
            bench::write_all(down_w.fd, &len, sizeof len);
            bench::write_all(down_w.fd, e.data(), len);
        }

        try {
            Msg id, body;
            for (std::size_t i = 0; i < conns; ++i) {
                std::size_t idn = recv_msg(router.get(), &id.m, guard, "idle server hello",
                                           detail::kIdleStepTimeoutS);
                std::uint64_t key = 0;
                std::memcpy(&key, zmq_msg_data(&id.m), std::min<std::size_t>(idn, sizeof key));
                ids.push_back(key);
                if (!zmq_msg_more(&id.m)) throw bench::Error("idle server: no body");
                recv_msg(router.get(), &body.m, guard, "idle server hello");
            }
        } catch (const std::exception& e) {
            // Tell the client, and add its own error (if it reported one) to ours.
            std::string msg = e.what();
            char no = 'F';
            try {
                bench::write_all(down_w.fd, &no, 1);
                detail::ClientReport rep;
                bench::read_all(up_r.fd, &rep, sizeof rep, 2);
                rep.message[sizeof rep.message - 1] = '\0';
                if (!rep.ok && rep.message[0]) msg += std::string("; client: ") + rep.message;
            } catch (...) {
            }
            throw bench::Error(msg);
        }
        bench::settle_idle();
        long after = bench::rss_kib();
        result.server_kib = static_cast<double>(after - base) / static_cast<double>(conns);

        std::sort(ids.begin(), ids.end());
        std::size_t distinct =
            static_cast<std::size_t>(std::unique(ids.begin(), ids.end()) - ids.begin());

        char go = 'R';
        bench::write_all(down_w.fd, &go, 1);
        detail::ClientReport rep;
        bench::read_all(up_r.fd, &rep, sizeof rep, detail::kIdleStepTimeoutS);
        rep.message[sizeof rep.message - 1] = '\0';
        if (!rep.ok) child_error = std::string("idle client: ") + rep.message;
        result.client_kib = rep.kib_per_conn;
        char bye = 'X';
        bench::write_all(down_w.fd, &bye, 1);
        if (child_error.empty() && distinct != conns)
            child_error = "idle: server saw " + std::to_string(distinct) +
                          " distinct connections, expected " + std::to_string(conns);
    }
    if (!child.wait_exit(30) && child_error.empty())
        child_error = "idle: client process did not exit cleanly";
    if (!child_error.empty()) throw bench::Error(child_error);
    return result;
}

}  // namespace zmq_side
