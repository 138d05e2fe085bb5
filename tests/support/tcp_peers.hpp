#pragma once

// Connected TCP pairs, raw peers attached to our connections in either role, a
// healthy echo peer for "good-peer probes", and a reproducible message stream.

#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/raw_peer.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <sys/socket.h>

namespace mesh_test {

// Runs listener.accept() on a thread of its own, for any stream listener. Joining
// never hangs: if no client came (say, a failed check ended the test early), a
// throwaway TCP client is sent in, which makes the accept fail.
template <class Listener>
class BackgroundAccept {
public:
    using connection_type = typename Listener::connection_type;

    explicit BackgroundAccept(Listener& listener)
        : endpoint_(listener.endpoint()), thread_([this, &listener] {
              connection = listener.accept(ec);
              done_ = true;
          }) {}
    BackgroundAccept(const BackgroundAccept&) = delete;
    BackgroundAccept& operator=(const BackgroundAccept&) = delete;
    ~BackgroundAccept() { join(); }

    void join() {
        if (!thread_.joinable()) return;
        if (!wait_done(std::chrono::seconds(10))) raw_connect(endpoint_);  // closed at once: accept fails
        thread_.join();
    }

    connection_type connection;
    std::error_code ec;

private:
    bool wait_done(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done_) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return true;
    }

    std::string endpoint_;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

// Both ends of one TCP connection made through the transport.
struct TcpPair {
    mesh::TcpConnection client;  // the connecting end
    mesh::TcpConnection server;  // the accepted end
};

inline TcpPair tcp_pair(mesh::Tcp& tcp, const std::string& bind = "127.0.0.1:0") {
    auto listener = tcp.listen(bind);
    TcpPair pair;
    BackgroundAccept accept(listener);
    std::error_code connect_ec;
    pair.client = tcp.connect(listener.endpoint(), connect_ec);
    accept.join();
    REQUIRE_MESSAGE(!connect_ec, connect_ec.message());
    REQUIRE_MESSAGE(!accept.ec, accept.ec.message());
    pair.server = std::move(accept.connection);
    return pair;
}

// Which side of the connection our library plays against the raw peer.
enum class Role { accepted, dialed };

inline const char* role_name(Role role) { return role == Role::accepted ? "accepted" : "dialed"; }

// A raw peer whose handshake with one of our connections is complete.
struct RawLink {
    RawSocket raw;
    mesh::TcpConnection connection;
};

inline RawLink raw_link(mesh::Tcp& tcp, Role role) {
    RawLink link;
    if (role == Role::accepted) {
        auto listener = tcp.listen("127.0.0.1:0");
        link.raw = raw_connect(listener.endpoint());
        REQUIRE(link.raw.valid());
        REQUIRE(link.raw.write_all(raw_hello(1, 1)));
        std::error_code ec;
        link.connection = listener.accept(ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        REQUIRE(hex(link.raw.read_exact(2)) == "00 01");
    } else {
        RawListener listener;
        REQUIRE(listener.valid());
        Bytes hello;
        std::thread peer([&] {
            link.raw = listener.accept();
            if (link.raw.valid()) hello = link.raw.answer_hello(1);
        });
        std::error_code ec;
        link.connection = tcp.connect(listener.endpoint(), ec);
        peer.join();
        REQUIRE_MESSAGE(!ec, ec.message());
        REQUIRE(hex(hello) == "00 01 00 01");
    }
    return link;
}

// A healthy connection in a mesh whose far end echoes every message back from its
// own thread, to check that a mesh keeps serving it (the "good-peer probe").
template <class Mesh>
class EchoPeer {
public:
    EchoPeer(Mesh& mesh, mesh::Tcp& tcp, std::string id = "healthy") : mesh_(mesh), id_(std::move(id)) {
        auto pair = tcp_pair(tcp);
        far_ = std::move(pair.client);
        far_fd_ = far_.socket().native_handle();
        mesh_.add(std::move(pair.server), id_);
        thread_ = std::thread([this] {
            mesh::Payload payload;
            while (!far_.recv(payload))
                if (far_.send(payload)) break;
        });
    }
    EchoPeer(const EchoPeer&) = delete;
    EchoPeer& operator=(const EchoPeer&) = delete;
    ~EchoPeer() {
        ::shutdown(far_fd_, SHUT_RDWR);  // ends the echo thread's recv
        thread_.join();
    }

    const std::string& id() const noexcept { return id_; }

    // `count` request/response round trips through the mesh; returns how many came
    // back intact and in order. Envelopes from other connections are tallied in strays.
    int probe(int count = 100) {
        int ok = 0;
        for (int i = 0; i < count; ++i) {
            mesh::Payload request(16 + static_cast<std::size_t>(i % 50), static_cast<std::uint8_t>(i));
            request[0] = static_cast<std::uint8_t>(round_);
            request[1] = static_cast<std::uint8_t>(i);
            const mesh::Payload expected = request;
            if (!mesh_.send(id_, std::move(request)).ok()) break;
            mesh::Envelope reply;
            bool got = false;
            while (!got) {
                if (mesh_.recv_timeout(reply, std::chrono::seconds(5))) break;
                if (reply.id == id_) got = true;
                else ++strays[reply.id];
            }
            if (!got || reply.payload != expected) break;
            ++ok;
        }
        ++round_;
        return ok;
    }

    std::map<std::string, int> strays;

private:
    Mesh& mesh_;
    std::string id_;
    mesh::TcpConnection far_;
    int far_fd_ = -1;
    std::thread thread_;
    int round_ = 0;
};

// The next connection event, or nothing within `timeout`.
template <class Mesh>
std::optional<mesh::ConnectionEvent> next_event(Mesh& m, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    mesh::ConnectionEvent event;
    if (m.next_event(event, timeout)) return std::nullopt;
    return event;
}

// A reproducible stream of `count` messages of varied sizes (mostly small, zero
// included, a few above the 16 KiB copy limit and two above the 64 KiB read
// buffer), and its bytes on the wire as our own encoder writes them.
struct MessageStream {
    std::vector<mesh::Payload> messages;
    Bytes wire;
};

inline MessageStream make_stream(std::size_t count = 10000, std::uint32_t seed = 0x5EED) {
    std::mt19937 random(seed);
    MessageStream s;
    s.messages.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        std::size_t size;
        const auto pick = random() % 1000;
        if (i % 4444 == 3333) size = 64 * 1024 + 1 + random() % 1000;       // read straight into the payload
        else if (i % 3333 == 1111) size = 16 * 1024 + 1 + random() % 600;   // its own gather buffer
        else if (pick < 100) size = 0;
        else if (pick < 987) size = 1 + random() % 32;
        else size = 33 + random() % 1500;
        mesh::Payload p(size);
        std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u + seed;
        for (auto& b : p) {
            x = x * 1664525u + 1013904223u;
            b = static_cast<std::uint8_t>(x >> 24);
        }
        append(s.wire, raw_frame(p));
        s.messages.push_back(std::move(p));
    }
    return s;
}

} // namespace mesh_test
