#pragma once

#include "mesh/version.hpp"

#include <asio/error.hpp>

#include <openssl/bio.h>

#include <cerrno>
#include <cstddef>
#include <system_error>
#include <vector>

#include <sys/socket.h>

MESH_NAMESPACE_BEGIN
namespace detail {

// The socket end of a TLS session. Two reasons for our own BIO: OpenSSL's socket
// BIO writes with write(2), which raises SIGPIPE when the peer has gone (we send
// with MSG_NOSIGNAL), and a batch of small records should leave in one send, not
// one system call per record.
class SocketBio {
public:
    struct State {
        int fd = -1;
        bool gather = false;  // records are collected in `out`, sent by flush()
        std::vector<char> out;
        std::size_t sent = 0;  // of `out`

        std::size_t held() const noexcept { return out.size() - sent; }

        // Sends what is held: {} once all is out, would_block while the socket is full.
        [[nodiscard]] std::error_code flush() {
            while (sent < out.size()) {
                const ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
                if (n < 0) {
                    if (retry(errno)) return asio::error::would_block;
                    // Asio's category, as plain sockets report: a reset must compare
                    // equal to asio::error::connection_reset (see StreamConnection).
                    return {errno, asio::error::get_system_category()};
                }
                sent += static_cast<std::size_t>(n);
            }
            sent = 0;
            out.clear();
            if (out.capacity() > 64 * 1024) out = std::vector<char>();  // a large batch's buffer is not kept
            return {};
        }
    };

    // The BIO owns the state; the returned pointer lives as long as the BIO.
    static BIO* make(int fd, State*& state) {
        BIO* bio = BIO_new(method());
        if (!bio) return nullptr;
        state = new State;
        state->fd = fd;
        BIO_set_data(bio, state);
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
            BIO_meth_set_destroy(m, &destroy);
            return m;
        }();
        return shared;
    }

    static State& state(BIO* bio) { return *static_cast<State*>(BIO_get_data(bio)); }

    static bool retry(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

    static int write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
        BIO_clear_retry_flags(bio);
        State& s = state(bio);
        if (s.gather) {
            s.out.insert(s.out.end(), data, data + size);
            *written = size;
            return 1;
        }
        // A record OpenSSL writes on its own (an alert, a KeyUpdate reply) waits behind
        // held records, in OpenSSL's buffer rather than ours: a peer that keeps
        // provoking them while not reading then meets backpressure, not our memory.
        if (s.held() != 0) {
            if (const auto ec = s.flush()) {
                if (ec == asio::error::would_block) BIO_set_retry_write(bio);
                return 0;
            }
        }
        const ssize_t n = ::send(s.fd, data, size, MSG_NOSIGNAL);
        if (n >= 0) {
            *written = static_cast<std::size_t>(n);
            return 1;
        }
        if (retry(errno)) BIO_set_retry_write(bio);
        return 0;
    }

    static int read(BIO* bio, char* data, std::size_t size, std::size_t* got) {
        BIO_clear_retry_flags(bio);
        const ssize_t n = ::recv(state(bio).fd, data, size, 0);
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
        case BIO_CTRL_FLUSH: return 1;  // records held in a batch leave with the batch
        case BIO_CTRL_EOF: return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0;
        default: return 0;
        }
    }

    static int destroy(BIO* bio) {
        delete static_cast<State*>(BIO_get_data(bio));
        BIO_set_data(bio, nullptr);
        return 1;
    }
};

} // namespace detail
MESH_NAMESPACE_END
