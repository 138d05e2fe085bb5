#pragma once

// What the kernel says about this process and others: descriptors held and CPU
// time spent, read from /proc (Linux).

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace mesh_test {

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

// CPU time of this process's threads named "mesh-reactor", in clock ticks.
inline std::uint64_t reactor_cpu_ticks() {
    std::uint64_t total = 0;
    if (DIR* dir = ::opendir("/proc/self/task")) {
        while (dirent* entry = ::readdir(dir)) {
            if (entry->d_name[0] == '.') continue;
            const std::string task = std::string("/proc/self/task/") + entry->d_name;
            std::ifstream comm(task + "/comm");
            std::string name;
            std::getline(comm, name);
            if (name != "mesh-reactor") continue;
            total += cpu_ticks_of_stat(task + "/stat");
        }
        ::closedir(dir);
    }
    return total;
}

// CPU time of every thread of process `pid`, in clock ticks.
inline std::uint64_t process_cpu_ticks(pid_t pid) {
    return cpu_ticks_of_stat("/proc/" + std::to_string(pid) + "/stat");
}

inline long clock_ticks_per_second() { return ::sysconf(_SC_CLK_TCK); }

// The most resident memory a process has had (VmHWM), in bytes; "self" or a pid.
inline std::size_t peak_resident_bytes(const std::string& process = "self") {
    std::ifstream status("/proc/" + process + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) != 0) continue;
        std::istringstream fields(line.substr(6));
        std::size_t kib = 0;
        fields >> kib;
        return kib * 1024;
    }
    return 0;
}

} // namespace mesh_test
