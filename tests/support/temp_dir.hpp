#pragma once

// A fresh directory under /tmp, removed with everything in it when the test ends:
// socket paths and certificate files never collide between tests or runs.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mesh_test {

class TempDir {
public:
    TempDir() {
        std::string tmpl = "/tmp/mesh-test-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr)
            throw std::system_error(errno, std::generic_category(), "mkdtemp");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;  // a destructor must not throw; a leftover dir is harmless
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

    // Plain file names only, so nothing is written outside the directory.
    std::string write(const std::string& name, const std::string& content) const {
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
            throw std::invalid_argument("TempDir::write: bad file name '" + name + "'");
        const std::string full = path_ + "/" + name;
        const int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + full);
        // fchmod because O_CREAT leaves an existing file's mode alone.
        int err = ::fchmod(fd, 0600) == 0 ? 0 : errno;
        const char* p = content.data();
        std::size_t left = content.size();
        while (err == 0 && left > 0) {
            const ssize_t n = ::write(fd, p, left);
            if (n < 0) {
                if (errno != EINTR) err = errno;
                continue;
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        if (::close(fd) != 0 && err == 0) err = errno;
        if (err != 0) throw std::system_error(err, std::generic_category(), "write " + full);
        return full;
    }

private:
    std::string path_;
};

} // namespace mesh_test
