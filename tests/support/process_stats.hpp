#pragma once

// What the kernel says about this process and others: descriptors held and CPU
// time spent, read from /proc (Linux).

#include "sanitizers.hpp"

#include <dirent.h>
#if !MESH_TEST_ASAN && !MESH_TEST_TSAN
#include <malloc.h>
#endif
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace mesh_test {

#if MESH_TEST_ASAN || MESH_TEST_TSAN
constexpr bool sanitized = true;  // sanitized builds run the long loops shorter
#else
constexpr bool sanitized = false;
#endif

// AddressSanitizer keeps freed memory in quarantine, so resident size says nothing
// about what the library holds there.
#if MESH_TEST_ASAN
constexpr bool resident_size_is_meaningful = false;
#else
constexpr bool resident_size_is_meaningful = true;
#endif

inline std::size_t open_descriptors() {
    std::size_t n = 0;
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        while (::readdir(dir) != nullptr) ++n;
        ::closedir(dir);
    }
    return n;
}

// utime + stime, in clock ticks, from a /proc/.../stat line (fields 14 and 15).
inline std::uint64_t cpu_ticks_of_stat(const std::string& path) {
    std::ifstream stat(path);
    std::string line;
    std::getline(stat, line);
    const auto name_end = line.rfind(')');
    if (name_end == std::string::npos || name_end + 2 > line.size()) return 0;
    std::istringstream fields(line.substr(name_end + 2));  // the name may hold spaces
    std::string skip;
    for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt
    std::uint64_t user = 0, system = 0;
    fields >> user >> system;
    return user + system;
}

// CPU time spent by this process's threads named "mesh-reactor" since the clock
// was made, in clock ticks. Threads are told apart: a reactor that ended meanwhile
// (another mesh's, finishing) drops out instead of making the sum go back, and one
// that began counts whole.
class ReactorClock {
public:
    ReactorClock() : start_(read()) {}

    std::uint64_t ticks() const {
        std::uint64_t total = 0;
        for (const auto& thread : read()) {
            const auto before = start_.find(thread.first);
            const std::uint64_t from = before == start_.end() ? 0 : before->second;
            if (thread.second > from) total += thread.second - from;
        }
        return total;
    }

private:
    static std::map<std::string, std::uint64_t> read() {
        std::map<std::string, std::uint64_t> threads;
        if (DIR* dir = ::opendir("/proc/self/task")) {
            while (dirent* entry = ::readdir(dir)) {
                if (entry->d_name[0] == '.') continue;
                const std::string task = std::string("/proc/self/task/") + entry->d_name;
                std::ifstream comm(task + "/comm");
                std::string name;
                std::getline(comm, name);
                if (name == "mesh-reactor") threads[entry->d_name] = cpu_ticks_of_stat(task + "/stat");
            }
            ::closedir(dir);
        }
        return threads;
    }

    std::map<std::string, std::uint64_t> start_;
};

#if MESH_TEST_ASAN || MESH_TEST_TSAN
// In the sanitizers' runtime; GCC ships no header that declares it.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

// Bytes the process's heap holds for live allocations: the sanitizers' allocator
// under ASan and TSan, glibc's otherwise.
inline std::size_t heap_in_use() {
#if MESH_TEST_ASAN || MESH_TEST_TSAN
    return __sanitizer_get_current_allocated_bytes();
#else
    const struct mallinfo2 info = ::mallinfo2();
    return info.uordblks + info.hblkhd;
#endif
}

// CPU time of every thread of process `pid`, in clock ticks.
inline std::uint64_t process_cpu_ticks(pid_t pid) {
    return cpu_ticks_of_stat("/proc/" + std::to_string(pid) + "/stat");
}

inline long clock_ticks_per_second() { return ::sysconf(_SC_CLK_TCK); }

// A size field of /proc/<process>/status ("VmHWM:", "VmRSS:"), in bytes.
inline std::size_t status_bytes(const std::string& process, const std::string& field) {
    std::ifstream status("/proc/" + process + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field, 0) != 0) continue;
        std::istringstream fields(line.substr(field.size()));
        std::size_t kib = 0;
        fields >> kib;
        return kib * 1024;
    }
    return 0;
}

// The most resident memory a process has had, in bytes; "self" or a pid.
inline std::size_t peak_resident_bytes(const std::string& process = "self") { return status_bytes(process, "VmHWM:"); }

// The memory a process has resident now, in bytes; "self" or a pid.
inline std::size_t resident_bytes(const std::string& process = "self") { return status_bytes(process, "VmRSS:"); }

// Raises the soft descriptor limit towards `wanted` (never past the hard limit) and
// puts it back when it goes.
class DescriptorLimit {
public:
    explicit DescriptorLimit(rlim_t wanted) {
        if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) return;
        rlimit raised = saved_;
        raised.rlim_cur = std::min(std::max(wanted, saved_.rlim_cur), saved_.rlim_max);
        if (raised.rlim_cur != saved_.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &raised) == 0) restore_ = true;
        current_ = restore_ ? raised.rlim_cur : saved_.rlim_cur;
    }
    DescriptorLimit(const DescriptorLimit&) = delete;
    DescriptorLimit& operator=(const DescriptorLimit&) = delete;
    ~DescriptorLimit() {
        if (restore_) ::setrlimit(RLIMIT_NOFILE, &saved_);
    }
    rlim_t current() const noexcept { return current_; }

private:
    rlimit saved_{};
    rlim_t current_ = 0;
    bool restore_ = false;
};

} // namespace mesh_test
