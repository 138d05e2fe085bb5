// bench_common.hpp - shared pieces of the mesh benchmark program (mesh_bench).
//
// * result structs shared by the mesh and the ZeroMQ workloads;
// * timing (steady_clock), deadlines and a first-error slot for worker threads;
// * percentiles and medians;
// * the allocation counter interface (the operator new / malloc replacements themselves are
//   defined exactly once, in alloc_counter.cpp);
// * resident-set size of the process, open-file limit;
// * command-line arguments and output helpers (tables, RESULT lines).
//
// Everything except the result structs lives in namespace bench.

#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Results. Both systems (mesh and zmq) return these from every workload.
// ---------------------------------------------------------------------------------------------

struct ThroughputResult {
    double msgs_per_s = 0, mb_per_s = 0;  // MB = 1e6 bytes of payload
    double allocs_per_msg = -1;           // < 0: not measured
};

struct LatencyResult {
    double p50_us = 0, p99_us = 0, p999_us = 0;  // round-trip time
};

struct IdleResult {
    double server_kib = 0, client_kib = 0;  // RSS growth per connection end
};

namespace bench {

// ---------------------------------------------------------------------------------------------
// Errors and time
// ---------------------------------------------------------------------------------------------

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using Clock = std::chrono::steady_clock;

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

inline double ns_to_s(std::int64_t ns) { return static_cast<double>(ns) * 1e-9; }

// A point in time after which a workload gives up.
class Deadline {
public:
    explicit Deadline(double seconds_from_now)
        : at_(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(seconds_from_now))) {}
    bool expired() const { return Clock::now() >= at_; }
    double remaining_s() const {
        return std::chrono::duration<double>(at_ - Clock::now()).count();
    }

private:
    Clock::time_point at_;
};

// Shared by the threads of one workload: the first error wins, everybody else stops soon.
class Guard {
public:
    explicit Guard(double deadline_s) : deadline_(deadline_s) {}

    void fail(const std::string& what) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!failed_.load(std::memory_order_relaxed)) message_ = what;
        failed_.store(true, std::memory_order_release);
    }
    bool failed() const { return failed_.load(std::memory_order_acquire); }

    // Throws if another thread failed or the workload ran out of time. `where` names the loop.
    void check(const char* where) {
        if (failed()) throw Error(std::string("stopped (") + where + ")");
        if (deadline_.expired()) {
            fail(std::string("deadline exceeded in ") + where);
            throw Error(std::string("deadline exceeded in ") + where);
        }
    }

    // Waits (sleeping in short steps) until flag becomes true; bounded by the deadline.
    void wait_for(const std::atomic<bool>& flag, const char* where) {
        while (!flag.load(std::memory_order_acquire)) {
            check(where);
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    // Runs f, recording any exception.
    template <class F>
    void run(F&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            fail(e.what());
        } catch (...) {
            fail("unknown exception");
        }
    }

    // After all threads joined: throws the first error, if any.
    void rethrow() const {
        if (failed()) {
            std::lock_guard<std::mutex> lock(mutex_);
            throw Error(message_);
        }
    }

private:
    Deadline deadline_;
    std::atomic<bool> failed_{false};
    mutable std::mutex mutex_;
    std::string message_;
};

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

// Nearest-rank percentile (q in [0, 1]) of an ascending-sorted vector; 0 if empty.
inline double percentile_sorted(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0;
    double rank = std::ceil(q * static_cast<double>(sorted.size()));
    std::size_t idx = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
    if (idx >= sorted.size()) idx = sorted.size() - 1;
    return sorted[idx];
}

inline double percentile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return percentile_sorted(v, q);
}

// Median (mean of the two middle values for an even count); 0 if empty.
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double min_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
inline double max_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

// ---------------------------------------------------------------------------------------------
// Allocation counting
//
// alloc_counter.cpp replaces the global operator new (all overloads) and interposes malloc,
// calloc and realloc (forwarding to glibc's __libc_* functions), so C++ allocations and the C
// allocations made inside libzmq are both seen; each allocation is counted exactly once.
// Counting happens only between alloc_counting_start() and alloc_counting_stop(); the counter is
// striped over cache-line-sized slots (one per thread) so that counting does not make the threads
// of the measured workload fight over one cache line.
//
// Typical use in a throughput workload: call alloc_counting_start() right before the first timed
// send, alloc_counting_stop() right after the last message arrived, divide by the message count.
// ---------------------------------------------------------------------------------------------

void alloc_counting_start();          // resets the count and turns counting on
std::uint64_t alloc_counting_stop();  // turns counting off, returns allocations since start
bool alloc_counting_active();

// ---------------------------------------------------------------------------------------------
// Process resources
// ---------------------------------------------------------------------------------------------

// Current resident set size in KiB (from /proc/self/statm); -1 on error.
inline long rss_kib() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return -1;
    unsigned long size_pages = 0, resident_pages = 0;
    int n = std::fscanf(f, "%lu %lu", &size_pages, &resident_pages);
    std::fclose(f);
    if (n != 2) return -1;
    long page = sysconf(_SC_PAGESIZE);
    return static_cast<long>(resident_pages) * (page / 1024);
}

// Lets connections sit idle for a while (a library may release per-connection buffers
// of connections that stay quiet), then returns freed heap pages to the system, so
// that RSS counts live memory only. Both systems get the same treatment.
inline void settle_idle() {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    ::malloc_trim(0);
}

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
inline std::uint64_t raise_nofile_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur != rl.rlim_max) {
        rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    return static_cast<std::uint64_t>(rl.rlim_cur);
}

// ---------------------------------------------------------------------------------------------
// Two-process workloads (idle memory): pipes and the forked child
// ---------------------------------------------------------------------------------------------

inline void write_all(int fd, const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw bench::Error(std::string("pipe write: ") + std::strerror(errno));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

inline void read_all(int fd, void* data, std::size_t n, double timeout_s) {
    char* p = static_cast<char*>(data);
    Deadline dl(timeout_s);
    while (n > 0) {
        double rem = dl.remaining_s();
        if (rem <= 0) throw bench::Error("timed out waiting for the other process");
        pollfd pfd{fd, POLLIN, 0};
        int pr = ::poll(&pfd, 1, static_cast<int>(rem * 1000) + 1);
        if (pr < 0) {
            if (errno == EINTR) continue;
            throw bench::Error(std::string("poll: ") + std::strerror(errno));
        }
        if (pr == 0) continue;
        ssize_t r = ::read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw bench::Error(std::string("pipe read: ") + std::strerror(errno));
        }
        if (r == 0) throw bench::Error("the other process closed the pipe");
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}

// Kills (SIGKILL) and reaps the child unless it was released.
struct Child {
    pid_t pid = -1;
    ~Child() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            int st = 0;
            ::waitpid(pid, &st, 0);
        }
    }
    // Waits up to timeout_s for a normal exit; kills it otherwise.
    bool wait_exit(double timeout_s) {
        Deadline dl(timeout_s);
        while (pid > 0) {
            int st = 0;
            pid_t r = ::waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                pid = -1;
                return WIFEXITED(st) && WEXITSTATUS(st) == 0;
            }
            if (r < 0 && errno != EINTR) {
                pid = -1;
                return false;
            }
            if (dl.expired()) return false;  // destructor kills it
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return false;
    }
};

struct Fd {
    int fd = -1;
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};


// Runs this program again (/proc/self/exe) with the given arguments in a fresh process and
// returns what it wrote to stdout; stderr is shared. Throws bench::Error if it does not exit
// with status 0 within timeout_s (it is then killed with SIGKILL, by pid).
// Used for measurements that must start from a clean heap (idle memory).
inline std::string run_self(const std::vector<std::string>& args, double timeout_s) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw Error("run_self: pipe failed");
    std::vector<std::string> argv_s;
    argv_s.push_back("mesh_bench");
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv_p;
    for (auto& a : argv_s) argv_p.push_back(a.data());
    argv_p.push_back(nullptr);

    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw Error("run_self: fork failed");
    }
    if (pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the new descriptor
        ::execv("/proc/self/exe", argv_p.data());
        ::_exit(127);
    }
    ::close(fds[1]);

    std::string out;
    std::string failure;
    Deadline dl(timeout_s);
    for (;;) {
        double rem = dl.remaining_s();
        if (rem <= 0) {
            failure = "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s";
            break;
        }
        pollfd pfd{fds[0], POLLIN, 0};
        int pr = ::poll(&pfd, 1, static_cast<int>(std::min(rem, 1.0) * 1000) + 1);
        if (pr < 0 && errno != EINTR) {
            failure = "poll failed";
            break;
        }
        if (pr <= 0) continue;
        char buf[4096];
        ssize_t r = ::read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;  // EOF: the child closed stdout (exited)
        out.append(buf, static_cast<std::size_t>(r));
    }
    ::close(fds[0]);

    int status = 0;
    bool reaped = false;
    if (failure.empty()) {
        Deadline exit_dl(10);
        while (!exit_dl.expired()) {
            pid_t w = ::waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = true;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (!reaped) failure = "did not exit";
    }
    if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        failure = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                    : "killed by signal " + std::to_string(WTERMSIG(status));
    if (!failure.empty()) throw Error("child process " + args.front() + ": " + failure);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

struct Args {
    std::string work = "all";                // W1 | W2 | W3 | W4 | idle | all
    std::optional<std::string> transport;    // tcp | inproc (filters / selects W1 vs W2)
    std::optional<std::size_t> size;         // message size for W1, W2, W4
    double seconds = 2;                      // target duration of one run
    std::string peer = "zmq";                // zmq | none
    int runs = 3;                            // interleaved repetitions, the median is reported
    std::optional<std::uint64_t> messages;   // overrides the count (W1/W2 total, W3 round trips,
                                             // W4 per connection)
    std::optional<std::size_t> conns;        // overrides connections (idle, W4)
    std::size_t recv_batch = 64;             // mesh receivers: envelopes per recv call (W1, W2, W4)
};

inline const char* usage_text() {
    return "usage: mesh_bench [W1|W2|W3|W4|idle|all] [--transport tcp|inproc] [--size S]\n"
           "                  [--seconds T] [--peer zmq|none] [--runs R]\n"
           "                  [--messages N] [--conns N] [--recv-batch B]\n"
           "  W1    one-way throughput, one TCP loopback connection (PUSH/PULL for zmq)\n"
           "  W2    one-way throughput, in-process transport\n"
           "  W3    64 B round-trip latency over TCP (p50/p99/p99.9)\n"
           "  W4    fan-in: 100 connections into one receiving socket, 2 sender threads\n"
           "  idle  memory per idle connection end (1000 and 10000 connections)\n"
           "  all   W1 and W2 at 64 B, the inline size and one more, 1 KiB and 64 KiB,\n"
           "        W3, W4, idle (default)\n"
           "  --transport   W1/W2: choose the transport (W1 --transport inproc = W2);\n"
           "                all: run only the measurements over this transport\n"
           "  --size        message size for W1/W2/W4 (all: only this size)\n"
           "  --seconds     approximate duration of one run (default 2); sets message counts\n"
           "  --peer        system to compare with (default zmq; none = mesh only)\n"
           "  --runs        repetitions, mesh and peer interleaved; median reported (default 3)\n"
           "  --messages    explicit count: W1/W2 messages, W3 round trips, W4 per connection\n"
           "  --conns       explicit connection count for idle and W4\n"
           "  --recv-batch  envelopes a mesh receiver takes per recv call (default 64; 1 = one\n"
           "                at a time, as ZeroMQ's receivers take them)\n";
}

inline std::uint64_t parse_u64(const std::string& s, const char* what) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
        throw Error(std::string("bad value for ") + what + ": '" + s + "'");
    try {
        return std::stoull(s);
    } catch (...) {
        throw Error(std::string("bad value for ") + what + ": '" + s + "'");
    }
}

// Accepts "--opt value" and "--opt=value". Throws bench::Error on bad input.
inline Args parse_args(int argc, char** argv) {
    Args a;
    bool have_work = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        bool has_inline_value = false;
        if (arg.rfind("--", 0) == 0) {
            auto eq = arg.find('=');
            if (eq != std::string::npos) {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
                has_inline_value = true;
            }
        }
        auto next = [&](const char* what) -> std::string {
            if (has_inline_value) return value;
            if (i + 1 >= argc) throw Error(std::string("missing value for ") + what);
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h") {
            throw Error("help");
        } else if (arg == "--transport") {
            std::string t = next("--transport");
            if (t != "tcp" && t != "inproc") throw Error("--transport must be tcp or inproc");
            a.transport = t;
        } else if (arg == "--size") {
            std::uint64_t s = parse_u64(next("--size"), "--size");
            if (s == 0 || s > (64u << 20)) throw Error("--size must be in 1..67108864");
            a.size = static_cast<std::size_t>(s);
        } else if (arg == "--seconds") {
            std::string v = next("--seconds");
            char* end = nullptr;
            double d = std::strtod(v.c_str(), &end);
            if (end == v.c_str() || *end != '\0' || !(d > 0) || d > 3600)
                throw Error("--seconds must be a number in (0, 3600]");
            a.seconds = d;
        } else if (arg == "--peer") {
            std::string p = next("--peer");
            if (p != "zmq" && p != "none") throw Error("--peer must be zmq or none");
            a.peer = p;
        } else if (arg == "--runs") {
            std::uint64_t r = parse_u64(next("--runs"), "--runs");
            if (r < 1 || r > 100) throw Error("--runs must be in 1..100");
            a.runs = static_cast<int>(r);
        } else if (arg == "--messages") {
            std::uint64_t m = parse_u64(next("--messages"), "--messages");
            if (m < 1) throw Error("--messages must be >= 1");
            a.messages = m;
        } else if (arg == "--recv-batch") {
            std::uint64_t b = parse_u64(next("--recv-batch"), "--recv-batch");
            if (b < 1 || b > 4096) throw Error("--recv-batch must be in 1..4096");
            a.recv_batch = static_cast<std::size_t>(b);
        } else if (arg == "--conns") {
            std::uint64_t c = parse_u64(next("--conns"), "--conns");
            if (c < 1 || c > 100000) throw Error("--conns must be in 1..100000");
            a.conns = static_cast<std::size_t>(c);
        } else if (arg.rfind("-", 0) == 0) {
            throw Error("unknown option " + arg);
        } else {
            if (have_work) throw Error("more than one workload given: " + arg);
            if (arg != "W1" && arg != "W2" && arg != "W3" && arg != "W4" && arg != "idle" &&
                arg != "all")
                throw Error("unknown workload " + arg);
            a.work = arg;
            have_work = true;
        }
    }
    return a;
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

inline std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// 3 significant digits with k/M/G suffix: 3.88M, 570k, 22.4k, 812.
inline std::string fmt_si(double v) {
    const char* suffix = "";
    double x = v;
    if (std::fabs(v) >= 1e9) {
        x = v / 1e9;
        suffix = "G";
    } else if (std::fabs(v) >= 1e6) {
        x = v / 1e6;
        suffix = "M";
    } else if (std::fabs(v) >= 1e3) {
        x = v / 1e3;
        suffix = "k";
    }
    const char* f = std::fabs(x) >= 100 ? "%.0f%s" : std::fabs(x) >= 10 ? "%.1f%s" : "%.2f%s";
    char buf[64];
    std::snprintf(buf, sizeof buf, f, x, suffix);
    return buf;
}

// Fixed notation with a number of decimals that keeps ~3 significant digits.
inline std::string fmt_3(double v) {
    double a = std::fabs(v);
    const char* f = a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f";
    return fmt(f, v);
}

// "median [min-max]" of a set of runs, with the given formatter.
template <class F>
std::string fmt_runs(const std::vector<double>& v, F&& f) {
    if (v.empty()) return "n/a";
    std::string s = f(median(v));
    if (v.size() > 1) s += " [" + f(min_of(v)) + "-" + f(max_of(v)) + "]";
    return s;
}

// A plain-text table: left-aligned first columns, right-aligned numbers.
class Table {
public:
    explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    bool empty() const { return rows_.size() <= 1; }

    void print(std::FILE* out, std::size_t left_aligned_cols = 1) const {
        std::vector<std::size_t> w;
        for (const auto& r : rows_)
            for (std::size_t c = 0; c < r.size(); ++c) {
                if (w.size() <= c) w.push_back(0);
                w[c] = std::max(w[c], r[c].size());
            }
        for (std::size_t ri = 0; ri < rows_.size(); ++ri) {
            const auto& r = rows_[ri];
            std::string line;
            for (std::size_t c = 0; c < r.size(); ++c) {
                std::string pad(w[c] - r[c].size(), ' ');
                line += (c < left_aligned_cols) ? r[c] + pad : pad + r[c];
                if (c + 1 < r.size()) line += "  ";
            }
            std::fprintf(out, "%s\n", line.c_str());
            if (ri == 0) {
                std::size_t total = 0;
                for (std::size_t c = 0; c < w.size(); ++c) total += w[c] + (c ? 2 : 0);
                std::fprintf(out, "%s\n", std::string(total, '-').c_str());
            }
        }
    }

private:
    std::vector<std::vector<std::string>> rows_;
};

// Builder for the machine-readable lines: RESULT sys=zmq work=W1 transport=tcp size=64 ...
class ResultLine {
public:
    ResultLine(const std::string& sys, const std::string& work) {
        text_ = "RESULT sys=" + sys + " work=" + work;
    }
    ResultLine& kv(const char* key, const std::string& value) {
        text_ += std::string(" ") + key + "=" + value;
        return *this;
    }
    ResultLine& kv(const char* key, std::uint64_t value) { return kv(key, std::to_string(value)); }
    ResultLine& kv(const char* key, double value, const char* f) { return kv(key, fmt(f, value)); }
    const std::string& str() const { return text_; }

private:
    std::string text_;
};

}  // namespace bench
