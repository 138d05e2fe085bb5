// mesh_bench - side-by-side benchmark of mesh.hpp against ZeroMQ.
//
//   mesh_bench [W1|W2|W3|W4|idle|all] [--transport tcp|inproc] [--size S] [--seconds T]
//              [--peer zmq|none] [--runs R] [--messages N] [--conns N] [--recv-batch B]
//
// Workloads (benchmarks/README.md describes them and the method):
//   W1   one-way throughput over one TCP loopback connection (64 B, the inline size and one
//        byte more, 1 KiB, 64 KiB by default)
//   W2   the same over the in-process transport
//   W3   64 B round-trip latency over TCP, p50 / p99 / p99.9
//   W4   fan-in: 100 connections into one receiving socket, 2 sender threads
//   idle memory per idle connection end, 1000 and 10000 connections, ends in two processes
//
// Each measurement runs mesh and the peer interleaved (mesh run 1, zmq run 1, mesh run 2, ...)
// and reports the median [min-max] of R runs, then one machine-readable line per measurement
// and system:
//   RESULT sys=mesh|zmq work=W1 transport=tcp size=64 msgs_per_s=... MB_per_s=... allocs_per_msg=...
//   RESULT sys=... work=W3 transport=tcp size=64 p50_us=... p99_us=... p999_us=...
//   RESULT sys=... work=W4 transport=tcp size=64 conns=100 msgs_per_s=... MB_per_s=... allocs_per_msg=...
//   RESULT sys=... work=idle transport=tcp conns=N kib_per_conn=... server_kib=... client_kib=...
// (kib_per_conn is the mean of the server and client ends.) Every ratio in the tables is
// oriented so that > 1 means mesh is better.
//
// Message counts follow --seconds T: each count is T times the rate ZeroMQ reached on the
// reference machine for that workload and size (estimated_rate), so a ZeroMQ run takes
// about T seconds and a mesh run that meets the 2x goals about T/2. Both systems get the same
// count. --messages overrides it.
//
// Without libzmq at build time (MESH_BENCH_HAVE_ZMQ undefined) the zmq columns say n/a.

#include "bench_common.hpp"
#include "mesh_workloads.hpp"

#ifdef MESH_BENCH_HAVE_ZMQ
#include "zmq_workloads.hpp"
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace {

#ifdef MESH_BENCH_HAVE_ZMQ
constexpr bool kHaveZmq = true;
#else
constexpr bool kHaveZmq = false;
#endif

constexpr std::uint64_t kW3Warmup = 2000;
constexpr std::size_t kW4Conns = 100;
// 64 B, the inline payload size and one byte more (where a payload starts to take
// heap memory), 1 KiB and 64 KiB.
std::vector<std::size_t> default_sizes() {
    const std::size_t inline_size = mesh::Payload::inline_capacity;
    std::vector<std::size_t> sizes{64, inline_size, inline_size + 1, 1024, 65536};
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    return sizes;
}
constexpr std::size_t kIdleConns[] = {1000, 10000};

// ZeroMQ's W1/W2 medians on the reference machine when the counts were set, msgs/s, interpolated
// log-log between 64 B, 1 KiB and 64 KiB; flat below 64 B, constant bytes/s above 64 KiB.
double estimated_rate(bool tcp, std::size_t size) {
    const double xs[3] = {64, 1024, 65536};
    const double tcp_rates[3] = {3.88e6, 570e3, 22.4e3};
    const double inproc_rates[3] = {5.94e6, 2.10e6, 122e3};
    const double* ys = tcp ? tcp_rates : inproc_rates;
    double s = static_cast<double>(size);
    if (s <= xs[0]) return ys[0];
    if (s >= xs[2]) return ys[2] * xs[2] / s;
    int i = s <= xs[1] ? 0 : 1;
    double t = (std::log(s) - std::log(xs[i])) / (std::log(xs[i + 1]) - std::log(xs[i]));
    return std::exp(std::log(ys[i]) + t * (std::log(ys[i + 1]) - std::log(ys[i])));
}

std::uint64_t at_least(double v, std::uint64_t lo) {
    if (!(v > 0)) return lo;
    auto n = static_cast<std::uint64_t>(std::llround(v));
    return n < lo ? lo : n;
}

enum class Kind { Throughput, Latency, Idle };

// Values of one system over the runs of one measurement.
struct SysRuns {
    // Throughput: 0 msgs/s, 1 MB/s, 2 allocs/msg (only runs that measured it).
    // Latency: 0 p50, 1 p99, 2 p99.9 (us).  Idle: 0 server, 1 client, 2 mean (KiB per conn).
    std::vector<double> v[3];
    std::string error;
    bool enabled = false;
    bool any() const { return !v[0].empty(); }
};

struct Measurement {
    Kind kind = Kind::Throughput;
    std::string work;       // W1 W2 W3 W4 idle
    std::string transport;  // tcp inproc
    std::size_t size = 0;   // bytes (not for idle)
    std::uint64_t count = 0;  // W1/W2 messages, W3 round trips, W4 messages per connection
    std::size_t conns = 0;    // W4, idle
    SysRuns mesh, zmq;

    std::string label() const {
        std::string s = work + " " + transport;
        if (kind == Kind::Idle) return s + " conns=" + std::to_string(conns);
        s += " " + std::to_string(size) + " B";
        if (kind == Kind::Throughput && work == "W4")
            s += ", " + std::to_string(conns) + " x " + std::to_string(count) + " msgs";
        else if (kind == Kind::Throughput)
            s += ", " + std::to_string(count) + " msgs";
        else
            s += ", " + std::to_string(count) + " round trips";
        return s;
    }
};

// ----- planning -------------------------------------------------------------------------------

std::vector<Measurement> plan(const bench::Args& a) {
    std::vector<Measurement> out;
    const double T = a.seconds;
    const bool want_tcp = !a.transport || *a.transport == "tcp";
    const bool want_inproc = !a.transport || *a.transport == "inproc";
    std::vector<std::size_t> sizes;
    if (a.size)
        sizes.push_back(*a.size);
    else
        sizes = default_sizes();

    auto add_thr = [&](bool tcp) {
        for (std::size_t s : sizes) {
            Measurement m;
            m.kind = Kind::Throughput;
            m.work = tcp ? "W1" : "W2";
            m.transport = tcp ? "tcp" : "inproc";
            m.size = s;
            m.count = a.messages ? *a.messages : at_least(T * estimated_rate(tcp, s), 20000);
            out.push_back(m);
        }
    };
    auto add_w3 = [&] {
        Measurement m;
        m.kind = Kind::Latency;
        m.work = "W3";
        m.transport = "tcp";
        m.size = 64;
        m.count = a.messages ? *a.messages : at_least(10000 * T, 2000);  // 20000 at T = 2
        out.push_back(m);
    };
    auto add_w4 = [&] {
        Measurement m;
        m.kind = Kind::Throughput;
        m.work = "W4";
        m.transport = "tcp";
        m.size = a.size ? *a.size : 64;
        m.conns = a.conns ? *a.conns : kW4Conns;
        // ZeroMQ fan-in ran at ~2.2M msgs/s at 64 B (57 % of its W1); scale with W1's size curve.
        double rate = 2.2e6 * estimated_rate(true, m.size) / estimated_rate(true, 64);
        m.count = a.messages ? *a.messages
                             : at_least(T * rate / static_cast<double>(m.conns), 100);
        out.push_back(m);
    };
    auto add_idle = [&] {
        std::vector<std::size_t> cs;
        if (a.conns)
            cs.push_back(*a.conns);
        else
            cs.assign(std::begin(kIdleConns), std::end(kIdleConns));
        for (std::size_t c : cs) {
            Measurement m;
            m.kind = Kind::Idle;
            m.work = "idle";
            m.transport = "tcp";
            m.conns = c;
            out.push_back(m);
        }
    };
    auto tcp_only = [&](const char* w) {
        if (!want_tcp) throw bench::Error(std::string(w) + " runs over tcp only");
    };

    if (a.work == "W1" || a.work == "W2") {
        bool tcp = a.transport ? *a.transport == "tcp" : a.work == "W1";
        add_thr(tcp);
    } else if (a.work == "W3") {
        tcp_only("W3");
        add_w3();
    } else if (a.work == "W4") {
        tcp_only("W4");
        add_w4();
    } else if (a.work == "idle") {
        tcp_only("idle");
        add_idle();
    } else {  // all
        if (want_tcp) add_thr(true);
        if (want_inproc) add_thr(false);
        if (want_tcp) {
            add_w3();
            add_w4();
            add_idle();
        }
    }
    return out;
}

// ----- running --------------------------------------------------------------------------------

void record(SysRuns& r, const ThroughputResult& x) {
    r.v[0].push_back(x.msgs_per_s);
    r.v[1].push_back(x.mb_per_s);
    if (x.allocs_per_msg >= 0) r.v[2].push_back(x.allocs_per_msg);
}
void record(SysRuns& r, const LatencyResult& x) {
    r.v[0].push_back(x.p50_us);
    r.v[1].push_back(x.p99_us);
    r.v[2].push_back(x.p999_us);
}
void record(SysRuns& r, const IdleResult& x) {
    r.v[0].push_back(x.server_kib);
    r.v[1].push_back(x.client_kib);
    r.v[2].push_back(0.5 * (x.server_kib + x.client_kib));
}

// ----- idle measurements in a fresh process ---------------------------------------------------
//
// RSS growth is only meaningful in a process whose heap holds no freed-but-resident memory from
// earlier workloads (new connections would reuse it without growing RSS). So each idle run, for
// either system, re-executes this program as
//   mesh_bench --idle-child mesh|zmq N
// which calls mesh_idle(N) or zmq_side::idle(N) (these fork the client end themselves) and
// prints one line "IDLE_CHILD <server_kib> <client_kib>".

constexpr double kIdleChildTimeoutS = 600;

IdleResult idle_isolated(const char* sys, std::size_t conns) {
    std::string out =
        bench::run_self({"--idle-child", sys, std::to_string(conns)}, kIdleChildTimeoutS);
    IdleResult r;
    auto pos = out.find("IDLE_CHILD ");
    if (pos == std::string::npos ||
        std::sscanf(out.c_str() + pos, "IDLE_CHILD %lf %lf", &r.server_kib, &r.client_kib) != 2)
        throw bench::Error(std::string("idle child (") + sys + "): no result in its output");
    return r;
}

// The child side: returns the process exit status.
int idle_child_main(int argc, char** argv) {
    try {
        if (argc != 4) throw bench::Error("usage: --idle-child mesh|zmq N");
        std::string sys = argv[2];
        std::size_t conns = static_cast<std::size_t>(bench::parse_u64(argv[3], "N"));
        IdleResult r;
        if (sys == "mesh") {
            r = mesh_idle(conns);
        } else if (sys == "zmq") {
#ifdef MESH_BENCH_HAVE_ZMQ
            r = zmq_side::idle(conns);
#else
            throw bench::Error("built without libzmq");
#endif
        } else {
            throw bench::Error("unknown system " + sys);
        }
        std::printf("IDLE_CHILD %.6f %.6f\n", r.server_kib, r.client_kib);
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idle child: %s\n", e.what());
        return 1;
    }
}

void run_mesh(Measurement& m) {
    if (m.kind == Kind::Throughput) {
        if (m.work == "W1") record(m.mesh, mesh_w1(m.size, m.count));
        else if (m.work == "W2") record(m.mesh, mesh_w2(m.size, m.count));
        else record(m.mesh, mesh_w4(m.conns, m.count, m.size));
    } else if (m.kind == Kind::Latency) {
        record(m.mesh, mesh_w3(m.count, kW3Warmup));
    } else {
        record(m.mesh, idle_isolated("mesh", m.conns));
    }
}

void run_zmq(Measurement& m) {
#ifdef MESH_BENCH_HAVE_ZMQ
    if (m.kind == Kind::Throughput) {
        if (m.work == "W1") record(m.zmq, zmq_side::w1(m.size, m.count));
        else if (m.work == "W2") record(m.zmq, zmq_side::w2(m.size, m.count));
        else record(m.zmq, zmq_side::w4(m.conns, m.count, m.size));
    } else if (m.kind == Kind::Latency) {
        record(m.zmq, zmq_side::w3(m.count, kW3Warmup, m.size));
    } else {
        record(m.zmq, idle_isolated("zmq", m.conns));
    }
#else
    (void)m;
#endif
}

std::string short_value(const Measurement& m, const SysRuns& r) {
    if (!r.any()) return "failed";
    switch (m.kind) {
        case Kind::Throughput: return bench::fmt_si(r.v[0].back()) + " msgs/s";
        case Kind::Latency: return "p50 " + bench::fmt_3(r.v[0].back()) + " us";
        case Kind::Idle: return bench::fmt_3(r.v[2].back()) + " KiB/conn";
    }
    return "";
}

// Runs one system once; records the result or the error. Returns false on error.
template <class F>
bool run_one(const char* sys, Measurement& m, SysRuns& r, F&& f, std::string& progress) {
    try {
        f(m);
        progress += std::string(" | ") + sys + " " + short_value(m, r);
        return true;
    } catch (const std::exception& e) {
        if (r.error.empty()) r.error = e.what();
        progress += std::string(" | ") + sys + " ERROR";
        std::fprintf(stderr, "error: %s %s: %s\n", sys, m.label().c_str(), e.what());
        return false;
    }
}

// ----- reporting ------------------------------------------------------------------------------

// Formats the runs of one metric, "n/a" if the system did not run, "error" if it failed.
template <class F>
std::string cell(const SysRuns& r, int metric, F&& f) {
    if (!r.enabled) return "n/a";
    if (r.v[metric].empty()) return r.any() ? "-" : "error";
    if (bench::max_of(r.v[metric]) == 0 && bench::min_of(r.v[metric]) == 0) return "0";
    return bench::fmt_runs(r.v[metric], f);
}

// Ratio of medians num/den as "2.13x", or n/a.
std::string ratio(const SysRuns& num, const SysRuns& den, int metric) {
    if (!num.enabled || !den.enabled || num.v[metric].empty() || den.v[metric].empty())
        return "n/a";
    double a = bench::median(num.v[metric]), b = bench::median(den.v[metric]);
    if (!(a > 0) || !(b > 0)) return "n/a";
    return bench::fmt("%.2fx", a / b);
}

std::string fmt_allocs(double v) { return bench::fmt("%.2f", v); }
std::string fmt_mb(double v) { return bench::fmt_3(v); }
std::string fmt_us(double v) { return bench::fmt_3(v); }
std::string fmt_kib(double v) { return bench::fmt("%.2f", v); }

void print_tables(const std::vector<Measurement>& ms, int runs) {
    bench::Table thr({"work", "transport", "size", "messages", "mesh msgs/s", "zmq msgs/s",
                      "mesh/zmq", "mesh MB/s", "zmq MB/s", "mesh allocs/msg",
                      "zmq allocs/msg"});
    bench::Table lat({"work", "transport", "size", "round trips", "mesh p50", "zmq p50",
                      "zmq/mesh", "mesh p99", "zmq p99", "zmq/mesh", "mesh p99.9", "zmq p99.9",
                      "zmq/mesh"});
    bench::Table idle({"work", "conns", "mesh server", "mesh client", "mesh mean", "zmq server",
                       "zmq client", "zmq mean", "zmq/mesh"});
    for (const auto& m : ms) {
        if (m.kind == Kind::Throughput) {
            std::string msgs = m.work == "W4"
                                   ? std::to_string(m.conns) + " x " + bench::fmt_si(
                                         static_cast<double>(m.count))
                                   : bench::fmt_si(static_cast<double>(m.count));
            thr.add({m.work, m.transport, std::to_string(m.size), msgs,
                     cell(m.mesh, 0, bench::fmt_si), cell(m.zmq, 0, bench::fmt_si),
                     ratio(m.mesh, m.zmq, 0), cell(m.mesh, 1, fmt_mb), cell(m.zmq, 1, fmt_mb),
                     cell(m.mesh, 2, fmt_allocs), cell(m.zmq, 2, fmt_allocs)});
        } else if (m.kind == Kind::Latency) {
            lat.add({m.work, m.transport, std::to_string(m.size),
                     bench::fmt_si(static_cast<double>(m.count)), cell(m.mesh, 0, fmt_us),
                     cell(m.zmq, 0, fmt_us), ratio(m.zmq, m.mesh, 0), cell(m.mesh, 1, fmt_us),
                     cell(m.zmq, 1, fmt_us), ratio(m.zmq, m.mesh, 1), cell(m.mesh, 2, fmt_us),
                     cell(m.zmq, 2, fmt_us), ratio(m.zmq, m.mesh, 2)});
        } else {
            idle.add({m.work, std::to_string(m.conns), cell(m.mesh, 0, fmt_kib),
                      cell(m.mesh, 1, fmt_kib), cell(m.mesh, 2, fmt_kib), cell(m.zmq, 0, fmt_kib),
                      cell(m.zmq, 1, fmt_kib), cell(m.zmq, 2, fmt_kib),
                      ratio(m.zmq, m.mesh, 2)});
        }
    }
    std::string runs_note = runs > 1 ? "median [min-max] of " + std::to_string(runs) + " runs"
                                     : "1 run";
    if (!thr.empty()) {
        std::printf("\nThroughput (W1 tcp, W2 inproc, W4 fan-in), msgs/s, %s.\n"
                    "Ratio mesh/zmq of the medians: > 1 means mesh is better (faster).\n"
                    "MB/s counts payload only (1 MB = 1e6 B). allocs/msg: heap allocations "
                    "(operator new + malloc, all threads) per message in the timed part.\n\n",
                    runs_note.c_str());
        thr.print(stdout, 2);
    }
    if (!lat.empty()) {
        std::printf("\nRound-trip latency (W3), microseconds, %s.\n"
                    "Ratio zmq/mesh of the medians: > 1 means mesh is better (lower latency).\n\n",
                    runs_note.c_str());
        lat.print(stdout, 2);
    }
    if (!idle.empty()) {
        std::printf("\nIdle connections: RSS growth in KiB per connection end, %s.\n"
                    "mean = (server + client) / 2. Ratio zmq/mesh of the means: > 1 means mesh "
                    "is better (less memory).\n\n",
                    runs_note.c_str());
        idle.print(stdout, 2);
    }
    std::printf("\n");
}

void print_result_lines(const std::vector<Measurement>& ms) {
    for (const auto& m : ms) {
        for (int s = 0; s < 2; ++s) {
            const SysRuns& r = s == 0 ? m.mesh : m.zmq;
            if (!r.enabled || !r.any()) continue;
            bench::ResultLine line(s == 0 ? "mesh" : "zmq", m.work);
            line.kv("transport", m.transport);
            using bench::median;
            if (m.kind == Kind::Throughput) {
                line.kv("size", static_cast<std::uint64_t>(m.size));
                if (m.work == "W4") line.kv("conns", static_cast<std::uint64_t>(m.conns));
                line.kv("msgs_per_s", median(r.v[0]), "%.0f");
                line.kv("MB_per_s", median(r.v[1]), "%.2f");
                if (!r.v[2].empty()) line.kv("allocs_per_msg", median(r.v[2]), "%.3f");
            } else if (m.kind == Kind::Latency) {
                line.kv("size", static_cast<std::uint64_t>(m.size));
                line.kv("p50_us", median(r.v[0]), "%.1f");
                line.kv("p99_us", median(r.v[1]), "%.1f");
                line.kv("p999_us", median(r.v[2]), "%.1f");
            } else {
                line.kv("conns", static_cast<std::uint64_t>(m.conns));
                line.kv("kib_per_conn", median(r.v[2]), "%.2f");
                line.kv("server_kib", median(r.v[0]), "%.2f");
                line.kv("client_kib", median(r.v[1]), "%.2f");
            }
            std::printf("%s\n", line.str().c_str());
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--idle-child") return idle_child_main(argc, argv);

    bench::Args args;
    std::vector<Measurement> ms;
    try {
        args = bench::parse_args(argc, argv);
        ms = plan(args);
    } catch (const bench::Error& e) {
        if (std::string(e.what()) == "help") {
            std::printf("%s", bench::usage_text());
            return 0;
        }
        std::fprintf(stderr, "mesh_bench: %s\n%s", e.what(), bench::usage_text());
        return 2;
    }

    const bool zmq_enabled = kHaveZmq && args.peer == "zmq";
    for (auto& m : ms) {
        m.mesh.enabled = true;
        m.zmq.enabled = zmq_enabled;
    }
    mesh_side::recv_batch = args.recv_batch;
    bench::raise_nofile_limit();

    std::string zmq_note = "not built (MESH_BENCH_HAVE_ZMQ undefined)";
#ifdef MESH_BENCH_HAVE_ZMQ
    {
        int maj = 0, min = 0, pat = 0;
        zmq_version(&maj, &min, &pat);
        zmq_note = "libzmq " + std::to_string(maj) + "." + std::to_string(min) + "." +
                   std::to_string(pat) + (zmq_enabled ? "" : " (disabled by --peer none)");
    }
#endif
    std::printf("mesh_bench: work=%s seconds=%g runs=%d peer=%s recv-batch=%zu; zmq: %s; %u hardware threads\n",
                args.work.c_str(), args.seconds, args.runs, args.peer.c_str(), args.recv_batch, zmq_note.c_str(),
                std::thread::hardware_concurrency());
    std::fflush(stdout);

    bool any_error = false;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        Measurement& m = ms[i];
        for (int r = 0; r < args.runs; ++r) {
            std::string progress = "[" + std::to_string(i + 1) + "/" + std::to_string(ms.size()) +
                                   "] " + m.label() + ": run " + std::to_string(r + 1) + "/" +
                                   std::to_string(args.runs);
            any_error |= !run_one("mesh", m, m.mesh, run_mesh, progress);
            if (m.zmq.enabled) any_error |= !run_one("zmq", m, m.zmq, run_zmq, progress);
            std::fprintf(stderr, "%s\n", progress.c_str());
        }
    }

    print_tables(ms, args.runs);
    print_result_lines(ms);
    return any_error ? 1 : 0;
}
