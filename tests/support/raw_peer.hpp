#pragma once

// A raw POSIX TCP peer for wire-level tests: it speaks the handshake and the v1
// frame format by hand, from its own encoder, so that the library is checked
// against an independent implementation rather than against itself.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mesh_test {

using Bytes = std::vector<std::uint8_t>;
using raw_clock = std::chrono::steady_clock;

template <class ByteRange>
std::string hex(const ByteRange& bytes) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i != 0) out += ' ';
        out += digits[bytes[i] >> 4];
        out += digits[bytes[i] & 0xF];
    }
    return out;
}

// ---- the wire format, written out independently of the library ----

inline Bytes raw_header(std::uint32_t length, std::uint16_t version = 1) {
    Bytes h{static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version),
            static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
            static_cast<std::uint8_t>(length >> 8),  static_cast<std::uint8_t>(length)};
    unsigned sum = 0;
    for (auto b : h) sum += b;
    h.push_back(static_cast<std::uint8_t>((0x100u - (sum & 0xFFu)) & 0xFFu));  // all 7 bytes sum to 0 mod 256
    return h;
}

// Any byte range: a Bytes vector or a library payload.
template <class ByteRange>
Bytes raw_frame(const ByteRange& payload) {
    Bytes f = raw_header(static_cast<std::uint32_t>(payload.size()));
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

inline Bytes raw_frame(const Bytes& payload) { return raw_frame<Bytes>(payload); }

template <class ByteRange>
void append(Bytes& to, const ByteRange& more) {
    to.insert(to.end(), more.begin(), more.end());
}

inline Bytes raw_hello(std::uint16_t min_version, std::uint16_t max_version) {
    return {static_cast<std::uint8_t>(min_version >> 8), static_cast<std::uint8_t>(min_version),
            static_cast<std::uint8_t>(max_version >> 8), static_cast<std::uint8_t>(max_version)};
}

inline Bytes raw_reply(std::uint16_t version) {
    return {static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version)};
}

// ---- a blocking socket with deadlines ----

class RawSocket {
public:
    RawSocket() = default;
    explicit RawSocket(int fd) : fd_(fd) {}
    RawSocket(RawSocket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    RawSocket& operator=(RawSocket&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    RawSocket(const RawSocket&) = delete;
    RawSocket& operator=(const RawSocket&) = delete;
    ~RawSocket() { close(); }

    int fd() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    // Closes with a reset (RST) instead of a FIN.
    void reset() {
        if (fd_ < 0) return;
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close();
    }
    // Sends a FIN but keeps reading possible.
    void shutdown_write() {
        if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
    }
    void set_nodelay() {
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    // Writes everything, waiting for room up to the deadline; false on error or timeout.
    bool write_all(const std::uint8_t* data, std::size_t size,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto deadline = raw_clock::now() + timeout;
        std::size_t done = 0;
        while (done < size) {
            if (!wait(POLLOUT, deadline)) return false;
            const ssize_t n = ::send(fd_, data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return false;
            }
        }
        return true;
    }
    bool write_all(const Bytes& bytes, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        return write_all(bytes.data(), bytes.size(), timeout);
    }

    // Writes `bytes` in pieces of at most `chunk` bytes, one send() per piece.
    bool write_chunked(const Bytes& bytes, std::size_t chunk,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        for (std::size_t at = 0; at < bytes.size(); at += chunk)
            if (!write_all(bytes.data() + at, std::min(chunk, bytes.size() - at), timeout)) return false;
        return true;
    }

    // Reads exactly `size` bytes; returns fewer on end of stream, error or timeout.
    Bytes read_exact(std::size_t size, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        const auto deadline = raw_clock::now() + timeout;
        Bytes out(size);
        std::size_t done = 0;
        while (done < size) {
            if (!wait(POLLIN, deadline)) break;
            const ssize_t n = ::recv(fd_, out.data() + done, size - done, MSG_DONTWAIT);
            if (n > 0) done += static_cast<std::size_t>(n);
            else if (n == 0) break;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
        }
        out.resize(done);
        return out;
    }

    // True once the peer has closed (end of stream or reset) within the timeout;
    // whatever arrives before that is discarded.
    bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        const auto deadline = raw_clock::now() + timeout;
        std::uint8_t sink[4096];
        for (;;) {
            if (!wait(POLLIN, deadline)) return false;
            const ssize_t n = ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT);
            if (n == 0) return true;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
        }
    }

    // True when nothing at all (neither data nor a close) arrives for `period`.
    bool quiet_for(std::chrono::milliseconds period) {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, static_cast<int>(period.count())) == 0;
    }

    // ---- the handshake, by hand ----

    // Connector role: sends min/max, returns the 2-byte reply (fewer bytes if the peer closed).
    Bytes send_hello(std::uint16_t min_version = 1, std::uint16_t max_version = 1) {
        if (!write_all(raw_hello(min_version, max_version))) return {};
        return read_exact(2);
    }
    // Listener role: reads the 4-byte hello and answers `version`; returns the hello read.
    Bytes answer_hello(std::uint16_t version = 1) {
        Bytes hello = read_exact(4);
        if (hello.size() == 4) write_all(raw_reply(version));
        return hello;
    }

private:
    bool wait(short events, raw_clock::time_point deadline) {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - raw_clock::now());
            if (left.count() < 0) return false;
            pollfd p{fd_, events, 0};
            const int n = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
            if (n > 0) return true;
            if (n < 0 && errno != EINTR) return false;
        }
    }

    int fd_ = -1;
};

// "tcp://127.0.0.1:PORT", "127.0.0.1:PORT", "tcp://[::1]:PORT" -> a socket address.
inline bool parse_numeric_endpoint(const std::string& endpoint, sockaddr_storage& out, socklen_t& length) {
    std::string rest = endpoint;
    const auto scheme = rest.find("://");
    if (scheme != std::string::npos) rest = rest.substr(scheme + 3);
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) return false;
    std::string host = rest.substr(0, colon);
    const int port = std::atoi(rest.c_str() + colon + 1);
    std::memset(&out, 0, sizeof out);
    if (!host.empty() && host.front() == '[') {
        host = host.substr(1, host.size() - 2);
        auto* a = reinterpret_cast<sockaddr_in6*>(&out);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(static_cast<std::uint16_t>(port));
        length = sizeof(sockaddr_in6);
        return ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) == 1;
    }
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in);
    return ::inet_pton(AF_INET, host.c_str(), &a->sin_addr) == 1;
}

// A blocking TCP connect to a numeric endpoint; an invalid socket on failure.
inline RawSocket raw_connect(const std::string& endpoint) {
    sockaddr_storage address{};
    socklen_t length = 0;
    if (!parse_numeric_endpoint(endpoint, address, length)) return RawSocket();
    RawSocket s(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return s;
    int rc;
    do {
        rc = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&address), length);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return RawSocket();
    s.set_nodelay();
    return s;
}

// A listening raw socket on a loopback address, port chosen by the system.
class RawListener {
public:
    explicit RawListener(bool v6 = false, int backlog = 16) {
        socket_ = RawSocket(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!socket_.valid()) return;
        int one = 1;
        ::setsockopt(socket_.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_storage address{};
        socklen_t length = 0;
        parse_numeric_endpoint(v6 ? "[::1]:0" : "127.0.0.1:0", address, length);
        if (::bind(socket_.fd(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
            ::listen(socket_.fd(), backlog) != 0) {
            socket_.close();
            return;
        }
        length = sizeof address;
        ::getsockname(socket_.fd(), reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
        endpoint_ = std::string("tcp://") + (v6 ? "[::1]" : "127.0.0.1") + ":" + std::to_string(port_);
    }

    bool valid() const noexcept { return socket_.valid(); }
    std::uint16_t port() const noexcept { return port_; }
    const std::string& endpoint() const noexcept { return endpoint_; }
    void close() { socket_.close(); }

    // Waits up to `timeout` for a connection; an invalid socket when none came.
    RawSocket accept(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        pollfd p{socket_.fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return RawSocket();
        RawSocket s(::accept4(socket_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
        if (s.valid()) s.set_nodelay();
        return s;
    }

private:
    RawSocket socket_;
    std::uint16_t port_ = 0;
    std::string endpoint_;
};

// Bytes received on `fd` that nobody has read yet (the reader lags behind).
inline std::size_t unread_bytes(int fd) {
    int n = 0;
    if (::ioctl(fd, FIONREAD, &n) != 0) return 0;
    return static_cast<std::size_t>(n);
}

// A free loopback port (nobody listens on it once this returns).
inline std::uint16_t closed_port() {
    RawListener l;
    return l.port();
}

// True when an IPv6 loopback socket can be bound here.
inline bool have_ipv6_loopback() {
    RawListener l(true);
    return l.valid();
}

} // namespace mesh_test
