#pragma once

#include <openssl/bio.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include <sys/socket.h>

namespace mesh::detail {

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the peer
// has gone. This one sends with MSG_NOSIGNAL, so a vanished peer is an error
// code, never a dead process.
class SocketBio {
public:
    static BIO* make(int fd) {
        BIO* bio = BIO_new(method());
        if (!bio) return nullptr;
        BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
        BIO_set_init(bio, 1);
        return bio;
    }

private:
    static BIO_METHOD* method() {
        static BIO_METHOD* const shared = [] {
            BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mesh socket");
            BIO_meth_set_write_ex(m, &write);
            BIO_meth_set_read_ex(m, &read);
            BIO_meth_set_ctrl(m, &control);
            return m;
        }();
        return shared;
    }

    static int fd(BIO* bio) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio))); }

    static bool retry(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

    static int write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
        BIO_clear_retry_flags(bio);
        const ssize_t n = ::send(fd(bio), data, size, MSG_NOSIGNAL);
        if (n >= 0) {
            *written = static_cast<std::size_t>(n);
            return 1;
        }
        if (retry(errno)) BIO_set_retry_write(bio);
        return 0;
    }

    static int read(BIO* bio, char* data, std::size_t size, std::size_t* got) {
        BIO_clear_retry_flags(bio);
        const ssize_t n = ::recv(fd(bio), data, size, 0);
        if (n > 0) {
            *got = static_cast<std::size_t>(n);
            return 1;
        }
        if (n == 0) BIO_set_flags(bio, BIO_FLAGS_IN_EOF);  // lets OpenSSL tell a truncation from a close_notify
        else if (retry(errno)) BIO_set_retry_read(bio);
        return 0;
    }

    static long control(BIO* bio, int command, long, void*) {
        switch (command) {
        case BIO_CTRL_FLUSH: return 1;  // nothing is buffered here
        case BIO_CTRL_EOF: return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0;
        default: return 0;
        }
    }
};

} // namespace mesh::detail
