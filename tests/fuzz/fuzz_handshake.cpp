// Fuzzes Splinter's version handshake: wire::make_reply / check_reply on the
// bytes, then the non-blocking StreamHandshake<PlainSession> in the listener or
// connector role over a socketpair whose other end sends the bytes and closes.
// Every run must end, with the result the bytes call for, and the other end must
// receive exactly the reply (listener) or the hello (connector).
//
// Input: [mode] [peer bytes...]
//   mode bit 0: connector role (else listener);
//        bit 1: the peer closes completely (else it only shuts down its writes);
//        bit 2: drive step() by hand, the peer's bytes arriving in chunks of
//               ((mode >> 4) + 1) bytes, one chunk per would_block (else all
//               bytes are sent first and run_handshake runs with a deadline);
//        bit 3: listener role only: also run the reactor's AsyncListenerHandshake.

#include <mesh/error.hpp>
#include <mesh/transport/stream/plain_session.hpp>
#include <mesh/transport/stream/socket_io.hpp>
#include <mesh/transport/stream/handshake.hpp>
#include <mesh/wire/handshake.hpp>

#include "fuzz_check.hpp"

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using Bytes = std::vector<std::uint8_t>;
using Socket = asio::local::stream_protocol::socket;
using mesh::detail::Role;

// More than any handshake reads; keeps the upfront write within the socket buffer.
constexpr std::size_t kMaxPeerBytes = 4096;

struct Options {
    Role role;
    bool full_close;
    bool chunked;
    std::size_t chunk;
};

// What the handshake must come to when the peer is still there to take our
// writes (half close, or a full close that comes only after our writes).
std::error_code expected_result(Role role, const Bytes& peer) {
    if (role == Role::listener) {
        if (peer.size() < 4) return mesh::errc::handshake_failed;
        const unsigned lo = (unsigned{peer[0]} << 8) | peer[1], hi = (unsigned{peer[2]} << 8) | peer[3];
        return lo <= 1 && 1 <= hi ? std::error_code() : make_error_code(mesh::errc::unsupported_version);
    }
    if (peer.size() < 2) return mesh::errc::handshake_failed;
    return peer[0] == 0 && peer[1] == 1 ? std::error_code() : make_error_code(mesh::errc::unsupported_version);
}

// What the peer must have received: the listener's reply (00 01, or 00 00 on
// refusal) once it read a whole hello; the connector's hello 00 01 00 01 always.
Bytes expected_output(Role role, const Bytes& peer) {
    if (role == Role::connector) return {0, 1, 0, 1};
    if (peer.size() < 4) return {};
    return expected_result(role, peer) ? Bytes{0, 0} : Bytes{0, 1};
}

void check_wire_functions(const Bytes& peer) {
    if (peer.size() >= mesh::wire::hello_size) {
        std::error_code ec;
        const auto reply = mesh::wire::make_reply(peer.data(), ec);
        FUZZ_CHECK(ec == expected_result(Role::listener, peer));
        FUZZ_CHECK(reply[0] == 0 && reply[1] == (ec ? 0 : 1));
        // Our own reply is one our connector accepts, and only a success is.
        FUZZ_CHECK(!mesh::wire::check_reply(reply.data()) == !ec);
    }
    if (peer.size() >= mesh::wire::reply_size) {
        FUZZ_CHECK(mesh::wire::check_reply(peer.data()) == expected_result(Role::connector, peer));
    }
    const auto hello = mesh::wire::make_hello();
    std::error_code ec;
    mesh::wire::make_reply(hello.data(), ec);
    FUZZ_CHECK(!ec);
}

struct Pair {
    asio::io_context io;
    std::optional<Socket> ours;
    int peer = -1;

    Pair() {
        int fds[2];
        FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        ours.emplace(io);
        std::error_code ec;
        ours->assign(asio::local::stream_protocol(), fds[0], ec);
        FUZZ_CHECK(!ec);
        ours->non_blocking(true, ec);
        FUZZ_CHECK(!ec);
        peer = fds[1];
        ::fcntl(peer, F_SETFL, ::fcntl(peer, F_GETFL) | O_NONBLOCK);
    }
    ~Pair() {
        if (peer >= 0) ::close(peer);
    }

    void send(const std::uint8_t* data, std::size_t size) {
        while (size > 0) {
            const ssize_t n = ::send(peer, data, size, MSG_NOSIGNAL);
            FUZZ_CHECK(n > 0 || errno == EINTR);  // the buffer holds kMaxPeerBytes
            if (n > 0) {
                data += n;
                size -= static_cast<std::size_t>(n);
            }
        }
    }

    // The peer's end: a half close leaves it readable, a full close drops what we wrote.
    void finish(bool full_close) {
        if (full_close) {
            ::close(peer);
            peer = -1;
        } else {
            ::shutdown(peer, SHUT_WR);
        }
    }

    Bytes received() {
        Bytes out;
        std::uint8_t buffer[64];
        for (;;) {
            const ssize_t n = ::recv(peer, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            out.insert(out.end(), buffer, buffer + n);
        }
        return out;
    }
};

// The blocking entry point, with everything already sent: it must finish well
// before its deadline, since nothing more will ever arrive.
std::error_code run_blocking(Pair& pair, const Options& o, const Bytes& peer) {
    pair.send(peer.data(), peer.size());
    pair.finish(o.full_close);
    mesh::detail::PlainSession session;
    const auto deadline = mesh::detail::clock::now() + std::chrono::seconds(5);
    const auto ec = mesh::detail::run_handshake(*pair.ours, session, o.role, deadline);
    FUZZ_CHECK(ec != mesh::errc::timeout);
    return ec;
}

// step() by hand: each would_block must be true (nothing to read, or no room to
// write), and the next chunk arrives only then.
std::error_code run_stepped(Pair& pair, const Options& o, const Bytes& peer) {
    mesh::detail::PlainSession session;
    mesh::detail::StreamHandshake<mesh::detail::PlainSession> handshake(o.role);
    std::size_t sent = 0;
    bool closed = false;
    for (std::size_t steps = 0;; ++steps) {
        FUZZ_CHECK(steps <= peer.size() + 8);  // one chunk per would_block, at most
        const auto ec = handshake.step(*pair.ours, session);
        if (!mesh::detail::would_block(ec)) {
            // Done is done: another step changes nothing.
            if (!ec) FUZZ_CHECK(!handshake.step(*pair.ours, session));
            return ec;
        }
        const short events = session.wants(handshake.events());
        FUZZ_CHECK(events == POLLIN || events == POLLOUT);
        pollfd p{pair.ours->native_handle(), events, 0};
        int ready;
        do ready = ::poll(&p, 1, 0);
        while (ready < 0 && errno == EINTR);  // libFuzzer's timer signal
        FUZZ_CHECK(ready == 0);
        FUZZ_CHECK(!closed);  // after the close a read sees the end, never would_block
        if (sent < peer.size()) {
            const std::size_t n = std::min(o.chunk, peer.size() - sent);
            pair.send(peer.data() + sent, n);
            sent += n;
        } else {
            pair.finish(o.full_close);
            closed = true;
        }
    }
}

// The reactor's listener side, as accept_from runs it.
std::error_code run_async(const Bytes& peer) {
    Pair pair;
    pair.send(peer.data(), peer.size());
    pair.finish(false);
    std::optional<std::error_code> result;
    auto handler = [&result](mesh::detail::HandshakeAbort*, std::error_code ec, Socket&&,
                             mesh::detail::PlainSession&&) {
        FUZZ_CHECK(!result);  // runs once
        result = ec;
    };
    using Op = mesh::detail::AsyncListenerHandshake<Socket, mesh::detail::PlainSecurity, decltype(handler)>;
    auto op = std::make_shared<Op>(std::move(*pair.ours), mesh::detail::PlainSecurity{}, handler);
    op->start(std::chrono::seconds(5));
    op.reset();
    pair.io.run();  // returns once the handshake and its timer are done
    FUZZ_CHECK(result.has_value());
    FUZZ_CHECK(*result != mesh::errc::timeout);
    FUZZ_CHECK(pair.received() == expected_output(Role::listener, peer));
    return *result;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::signal(SIGPIPE, SIG_IGN);  // belt and braces: every send here says MSG_NOSIGNAL
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    const Bytes peer(data + 1, data + 1 + std::min(size - 1, kMaxPeerBytes));
    const Options o{(mode & 1) ? Role::connector : Role::listener, (mode & 2) != 0, (mode & 4) != 0,
                    static_cast<std::size_t>(mode >> 4) + 1};

    check_wire_functions(peer);

    {
        Pair pair;
        const auto ec = o.chunked ? run_stepped(pair, o, peer) : run_blocking(pair, o, peer);
        if (o.full_close && !o.chunked) {
            // Closed before we started: our first write fails, if a short hello
            // has not ended the listener already.
            FUZZ_CHECK(ec == mesh::errc::handshake_failed);
        } else {
            FUZZ_CHECK(ec == expected_result(o.role, peer));
        }
        if (!o.full_close) FUZZ_CHECK(pair.received() == expected_output(o.role, peer));
    }

    if ((mode & 8) && o.role == Role::listener) FUZZ_CHECK(run_async(peer) == expected_result(Role::listener, peer));
    return 0;
}
