// Faults: peers that die inside a frame, half-close, listeners that close under
// their connections, remove() racing heavy sends, and shutdown with everything
// stuck. Each checks the exact outcome, not just survival.
#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/configs.hpp"
#include "support/process_stats.hpp"
#include "support/raw_peer.hpp"
#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <asio/error.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using mesh_test::Bytes;
using mesh_test::Role;

using mesh_test::Incoming64;
using mesh_test::Outgoing64;
using mesh_test::sanitized;
namespace {

using Clock = std::chrono::steady_clock;
using TcpMesh = mesh::Mesh<mesh::Tcp>;

// Receives one envelope and says whether it is `text` from `id`.
template <class M>
bool receives(M& m, const std::string& id, const std::string& text) {
    mesh::Envelope envelope;
    if (m.recv_timeout(envelope, 10s)) return false;
    return envelope.id == id && mesh_test::text(envelope.payload) == text;
}

// Blocking round trips between two standalone ends.
bool exchange(mesh::TcpConnection& a, mesh::TcpConnection& b, int count) {
    for (int i = 0; i < count; ++i) {
        const auto out = mesh_test::numbered(static_cast<std::uint32_t>(i), 16 + static_cast<std::size_t>(i));
        mesh::Payload in;
        if (a.send(out) || b.recv_for(in, 10s) || in != out) return false;
    }
    return true;
}

// ---- the stream of test 7: each frame can be checked on its own ----

constexpr std::uint8_t marker_sender = 0xFF;

std::uint32_t mix(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

// Mostly small frames, now and then one above the 16 KiB copy limit (its own gather
// buffer), so a write cut short can stop inside either kind.
std::size_t frame_size(std::uint8_t sender, std::uint32_t seq) {
    const std::uint32_t h = mix(seq * 4u + sender);
    if (h % 97 == 0) return 16 * 1024 + 1 + h % 4000;
    return 5 + h % 300;
}

std::uint8_t frame_byte(std::uint8_t sender, std::uint32_t seq, std::size_t k) {
    return static_cast<std::uint8_t>(mix(seq * 4u + sender + static_cast<std::uint32_t>(k) * 0x9E3779B9u) >> 24);
}

// Byte 0: the sender, bytes 1-4: its sequence number (little endian), then bytes
// that depend on both and on the position: a frame holding bytes of another is seen.
mesh::Payload checked_frame(std::uint8_t sender, std::uint32_t seq) {
    mesh::Payload p(frame_size(sender, seq), 0);
    p[0] = sender;
    for (int i = 0; i < 4; ++i) p[1 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(seq >> (8 * i));
    for (std::size_t k = 5; k < p.size(); ++k) p[k] = frame_byte(sender, seq, k);
    return p;
}

// Reads frames from a raw socket with its own parser and checks every one: header
// checksum and version, length, and body against what its sender wrote. Per sender
// the numbers must run 0, 1, 2, ... (what arrives is a prefix of what was accepted).
struct FrameChecker {
    std::array<std::uint32_t, 4> received{};  // frames per sender
    std::uint32_t markers = 0;                // marker frames, which come last
    std::uint64_t bad_header = 0, torn = 0, out_of_order = 0, after_marker = 0;
    std::string first_problem;
    bool ended_early = false;

    Bytes already_read;  // parsed before anything read from the socket
    std::size_t already_at = 0;

    void note(const std::string& problem) {
        if (first_problem.empty()) first_problem = problem;
    }

    Bytes read_exact(mesh_test::RawSocket& raw, std::size_t size) {
        const std::size_t from_before = std::min(size, already_read.size() - already_at);
        const auto first = already_read.begin() + static_cast<std::ptrdiff_t>(already_at);
        Bytes out(first, first + static_cast<std::ptrdiff_t>(from_before));
        already_at += from_before;
        if (out.size() < size) mesh_test::append(out, raw.read_exact(size - out.size(), 20s));
        return out;
    }

    // Reads until `markers_wanted` marker frames have come, or a problem.
    void run(mesh_test::RawSocket& raw, std::uint32_t markers_wanted) {
        while (markers < markers_wanted) {
            const Bytes header = read_exact(raw, 7);
            if (header.size() != 7) {
                ended_early = true;
                note("stream ended after " + std::to_string(total()) + " frames");
                return;
            }
            unsigned sum = 0;
            for (auto b : header) sum += b;
            const std::uint32_t length = (std::uint32_t(header[2]) << 24) | (std::uint32_t(header[3]) << 16) |
                                         (std::uint32_t(header[4]) << 8) | header[5];
            if ((sum & 0xFF) != 0 || header[0] != 0 || header[1] != 1 || length < 5 || length > 64 * 1024) {
                ++bad_header;
                note("bad header " + mesh_test::hex(header) + " after " + std::to_string(total()) + " frames");
                return;  // the stream has lost its framing: nothing after it can be read
            }
            const Bytes body = read_exact(raw, length);
            if (body.size() != length) {
                ended_early = true;
                note("stream ended inside a frame");
                return;
            }
            check(body);
        }
    }

    void check(const Bytes& body) {
        const std::uint8_t sender = body[0];
        std::uint32_t seq = 0;
        for (int i = 0; i < 4; ++i) seq |= std::uint32_t(body[1 + static_cast<std::size_t>(i)]) << (8 * i);
        if (sender == marker_sender) {
            if (seq != markers)
                note("marker " + std::to_string(seq) + " where " + std::to_string(markers) + " was due");
            ++markers;
            return;
        }
        if (sender >= received.size()) {
            ++torn;
            note("a frame from no sender");
            return;
        }
        if (markers != 0) ++after_marker;
        bool whole = body.size() == frame_size(sender, seq);
        for (std::size_t k = 5; whole && k < body.size(); ++k) whole = body[k] == frame_byte(sender, seq, k);
        if (!whole) {
            ++torn;
            note("torn frame: sender " + std::to_string(sender) + " #" + std::to_string(seq));
        }
        if (seq != received[sender]) {
            ++out_of_order;
            note("sender " + std::to_string(sender) + ": #" + std::to_string(seq) + " where #" +
                 std::to_string(received[sender]) + " was due");
        }
        received[sender] = seq + 1;
    }

    std::uint64_t total() const {
        std::uint64_t n = 0;
        for (auto r : received) n += r;
        return n;
    }
};

// Everything that arrives until nothing more has come for `quiet`.
Bytes read_until_quiet(mesh_test::RawSocket& raw, std::chrono::milliseconds quiet) {
    Bytes out;
    for (;;) {
        const std::size_t ready = mesh_test::unread_bytes(raw.fd());
        if (ready != 0) {
            const Bytes chunk = raw.read_exact(ready);
            if (chunk.empty()) break;
            mesh_test::append(out, chunk);
        } else if (raw.quiet_for(quiet)) {
            break;
        }
    }
    return out;
}

// Half-closes after sending a stream; every frame must be delivered before the event.
template <class Config>
void half_close_delivers_everything(std::size_t count) {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Config> m;
    auto link = mesh_test::raw_link(tcp, Role::accepted);
    m.add(std::move(link.connection), "half");
    const auto stream = mesh_test::make_stream(count);
    // From a thread of its own: with a small incoming queue the mesh reads only as we take.
    std::atomic<bool> written{false};
    std::thread writer([&] {
        written = link.raw.write_all(stream.wire);
        link.raw.shutdown_write();  // a FIN: the peer still reads
    });

    std::size_t got = 0, wrong = 0;
    std::size_t got_at_event = count + 1;
    mesh::ConnectionEvent event;
    while (got < count) {
        if (got_at_event > count && !m.try_event(event)) got_at_event = got;
        mesh::Envelope envelope;
        // Once the event is out, what is left must be queued already: no waiting.
        const auto ec = got_at_event <= count ? m.try_recv(envelope) : m.recv_timeout(envelope, 10s);
        if (ec) {
            FAIL_CHECK("message " << got << " of " << count << ": " << ec.message()
                                  << (got_at_event <= count ? " after the disconnected event" : ""));
            break;
        }
        if (envelope.id != "half" || envelope.payload != stream.messages[got]) ++wrong;
        ++got;
    }
    writer.join();
    REQUIRE(written.load());
    if (got_at_event > count) {
        REQUIRE(m.next_event(event, 10s) == std::error_code());
        got_at_event = got;
    }
    MESSAGE(got_at_event << " of " << count << " messages taken when the event came");
    CHECK(wrong == 0);
    CHECK(got == count);
    CHECK(event.kind == mesh::ConnectionEvent::Kind::disconnected);
    CHECK(event.id == "half");
    CHECK(event.reason == mesh::errc::end_of_stream);
    CHECK(event.discarded == 0);
    mesh::Envelope extra;
    CHECK(m.try_recv(extra) == mesh::errc::would_block);
    CHECK(m.try_event(event) == mesh::errc::timeout);  // one event only
    CHECK(m.stats("half").messages_in == count);
    CHECK(m.stats("half").protocol_errors == 0);
    CHECK(link.raw.wait_closed());  // and the mesh closed its end
}

} // namespace

TEST_SUITE("faults") {

TEST_CASE("peers killed inside a frame: one disconnected event each, with its reason - the others carry on") {
    mesh::Tcp tcp;
    TcpMesh m;
    mesh_test::EchoPeer<TcpMesh> healthy(m, tcp);
    REQUIRE(healthy.probe(20) == 20);
    const std::size_t descriptors = mesh_test::open_descriptors();

    auto closing = mesh_test::raw_link(tcp, Role::accepted);
    auto resetting = mesh_test::raw_link(tcp, Role::dialed);
    m.add(std::move(closing.connection), "closes");
    m.add(std::move(resetting.connection), "resets");
    // A whole frame from each first: both are being read.
    REQUIRE(closing.raw.write_all(mesh_test::raw_frame(Bytes{'o', 'n', 'e'})));
    REQUIRE(receives(m, "closes", "one"));
    REQUIRE(resetting.raw.write_all(mesh_test::raw_frame(Bytes{'t', 'w', 'o'})));
    REQUIRE(receives(m, "resets", "two"));

    // A header announcing 1000 bytes, and 300 of them.
    Bytes partial = mesh_test::raw_header(1000);
    partial.resize(partial.size() + 300, 0x5A);
    REQUIRE(closing.raw.write_all(partial));
    REQUIRE(resetting.raw.write_all(partial));
    REQUIRE(healthy.probe(10) == 10);  // the reactor has been round since
    closing.raw.close();
    resetting.raw.reset();

    std::map<std::string, mesh::ConnectionEvent> events;
    int count = 0;
    for (int i = 0; i < 2; ++i) {
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        ++count;
        events[event->id] = *event;
    }
    CHECK(mesh_test::next_event(m, 300ms) == std::nullopt);  // exactly one each
    REQUIRE(events.size() == 2);
    REQUIRE(events.count("closes") == 1);
    REQUIRE(events.count("resets") == 1);
    CHECK(events["closes"].kind == mesh::ConnectionEvent::Kind::disconnected);
    CHECK(events["closes"].reason == mesh::errc::truncated_frame);
    CHECK(events["resets"].kind == mesh::ConnectionEvent::Kind::disconnected);
    CHECK(events["resets"].reason == asio::error::connection_reset);
    CHECK(events["closes"].discarded == 0);
    CHECK(events["resets"].discarded == 0);

    // Both stay registered (they were added) and say why they ended.
    const auto to_closed = m.send("closes", mesh::to_payload("late"));
    CHECK(to_closed.error == mesh::errc::disconnected);
    CHECK(to_closed.reason == mesh::errc::truncated_frame);
    const auto to_reset = m.send("resets", mesh::to_payload("late"));
    CHECK(to_reset.error == mesh::errc::disconnected);
    CHECK(to_reset.reason == asio::error::connection_reset);
    CHECK(m.stats("closes").protocol_errors == 1);
    CHECK(m.stats("resets").protocol_errors == 0);
    CHECK(m.stats("closes").messages_in == 1);
    CHECK(m.stats("resets").messages_in == 1);

    // Their sockets are closed: back to the descriptors held before they came.
    CHECK(mesh_test::wait_until([&] { return mesh_test::open_descriptors() == descriptors; }, 5s));
    CHECK(healthy.probe(100) == 100);
    CHECK(healthy.strays.empty());
    mesh::Envelope none;
    CHECK(m.try_recv(none) == mesh::errc::would_block);  // nothing of the partial frames leaked out
}

TEST_CASE("peers killed inside a frame, accepted by accept_from: reported once, then forgotten") {
    mesh::Tcp tcp;
    TcpMesh m;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    m.accept_from(std::move(listener));
    mesh_test::EchoPeer<TcpMesh> healthy(m, tcp);

    constexpr int peers = 8;  // half close inside a frame, half reset
    std::vector<mesh_test::RawSocket> raws;
    std::vector<std::string> ids;
    for (int i = 0; i < peers; ++i) {
        raws.push_back(mesh_test::raw_connect(endpoint));
        REQUIRE(raws.back().valid());
        REQUIRE(mesh_test::hex(raws.back().send_hello()) == "00 01");
        auto connected = mesh_test::next_event(m, 10s);
        REQUIRE(connected.has_value());
        REQUIRE(connected->kind == mesh::ConnectionEvent::Kind::connected);
        ids.push_back(connected->id);
        Bytes partial = mesh_test::raw_header(4096);
        partial.resize(partial.size() + 1 + static_cast<std::size_t>(i) * 100, 0x6B);
        REQUIRE(raws.back().write_all(partial));
    }
    REQUIRE(healthy.probe(10) == 10);
    for (int i = 0; i < peers; ++i) {
        if (i % 2 == 0) raws[static_cast<std::size_t>(i)].close();
        else raws[static_cast<std::size_t>(i)].reset();
    }
    std::map<std::string, int> seen;
    for (int i = 0; i < peers; ++i) {
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
        const auto at = std::find(ids.begin(), ids.end(), event->id);
        REQUIRE(at != ids.end());
        const bool closed = (at - ids.begin()) % 2 == 0;
        CAPTURE(event->id);
        if (closed) CHECK(event->reason == mesh::errc::truncated_frame);
        else CHECK(event->reason == asio::error::connection_reset);
        ++seen[event->id];
    }
    CHECK(mesh_test::next_event(m, 300ms) == std::nullopt);
    CHECK(seen.size() == static_cast<std::size_t>(peers));
    // Forgotten: their ids are free, and only the healthy connection is left.
    CHECK(mesh_test::wait_until([&] { return m.stats().connections == 1; }));
    for (const auto& id : ids) CHECK(m.send(id, mesh::to_payload("late")).error == mesh::errc::not_found);
    CHECK(m.stats().protocol_errors == static_cast<std::uint64_t>(peers / 2));
    CHECK(healthy.probe(100) == 100);
    CHECK(healthy.strays.empty());
}

TEST_CASE("a half-closed peer: every frame it sent is delivered before its disconnected event") {
    SUBCASE("the incoming queue holds them all") { half_close_delivers_everything<mesh::DefaultConfig>(2000); }
    SUBCASE("the incoming queue is small: the reactor pauses with the end of stream pending") {
        half_close_delivers_everything<Incoming64>(2000);
    }
}

TEST_CASE("a listener closed after accepting: its connections keep working both ways") {
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    mesh::TcpConnection client, server;
    {
        mesh_test::BackgroundAccept<mesh::TcpListener> accept(listener);
        client = tcp.connect(endpoint);
        accept.join();
        REQUIRE_MESSAGE(!accept.ec, accept.ec.message());
        server = std::move(accept.connection);
    }
    listener.close();
    std::error_code ec;
    auto refused = tcp.connect(endpoint, ec);
    CHECK(ec == mesh::errc::connection_refused);
    CHECK(exchange(client, server, 200));
    CHECK(exchange(server, client, 200));
    // And inside a mesh too.
    TcpMesh m;
    m.add(std::move(server), "server");
    for (int i = 0; i < 50; ++i) {
        REQUIRE(client.send(mesh_test::numbered(static_cast<std::uint32_t>(i))) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
        REQUIRE(m.send(std::move(envelope)).ok());
        mesh::Payload back;
        REQUIRE(client.recv_for(back, 10s) == std::error_code());
        CHECK(mesh_test::number_of(back) == static_cast<std::uint32_t>(i));
    }
}

TEST_CASE("in a mesh: accepted connections keep working while every client of a second, closed listener is refused") {
    mesh::Tcp tcp;
    TcpMesh m;
    // The mesh accepts from one listener...
    auto open_listener = tcp.listen("127.0.0.1:0");
    const std::string open_endpoint = open_listener.endpoint();
    m.accept_from(std::move(open_listener));
    std::vector<mesh::TcpConnection> accepted_clients;
    for (int i = 0; i < 3; ++i) {
        accepted_clients.push_back(tcp.connect(open_endpoint));
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
    }
    // ... holds connections a second listener accepted before it closed ...
    auto second = tcp.listen("127.0.0.1:0");
    const std::string second_endpoint = second.endpoint();
    std::vector<mesh::TcpConnection> added_clients;
    for (int i = 0; i < 2; ++i) {
        mesh_test::BackgroundAccept<mesh::TcpListener> accept(second);
        added_clients.push_back(tcp.connect(second_endpoint));
        accept.join();
        REQUIRE(!accept.ec);
        m.add(std::move(accept.connection), "added" + std::to_string(i));
    }
    second.close();
    // ... and is handed it closed: nothing is accepted from it.
    m.accept_from(std::move(second));
    for (int i = 0; i < 20; ++i) {
        std::error_code ec;
        auto refused = tcp.connect(second_endpoint, ec);
        CHECK(ec == mesh::errc::connection_refused);
    }
    CHECK(mesh_test::next_event(m, 200ms) == std::nullopt);
    CHECK(m.stats().connections == 5);

    // Every connection still works both ways: each client's message comes back.
    std::vector<mesh::TcpConnection*> clients;
    for (auto& c : accepted_clients) clients.push_back(&c);
    for (auto& c : added_clients) clients.push_back(&c);
    for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < clients.size(); ++i) {
            const auto message = mesh_test::numbered(static_cast<std::uint32_t>(round * 10 + static_cast<int>(i)), 32);
            REQUIRE(clients[i]->send(message) == std::error_code());
            mesh::Envelope envelope;
            REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
            CHECK(envelope.payload == message);
            REQUIRE(m.send(envelope.id, mesh::Payload(envelope.payload)).ok());
            mesh::Payload back;
            REQUIRE(clients[i]->recv_for(back, 10s) == std::error_code());
            CHECK(back == message);
        }
    }
    CHECK(m.stats().refused == 0);
}

TEST_CASE("remove during heavy send: every send has an allowed outcome - the removed connection writes whole frames") {
    // Rounds alternate: the peer reads all along, or only once remove has returned
    // (then a write is surely pending when remove cuts it short).
    const int rounds = sanitized ? 4 : 10;
    for (int round = 0; round < rounds; ++round) {
        CAPTURE(round);
        const bool peer_stalls = round % 2 == 1;
        mesh::Tcp tcp;
        mesh::Mesh<mesh::Tcp, Outgoing64> m;
        auto link = mesh_test::raw_link(tcp, Role::dialed);
        m.add(std::move(link.connection), "peer");

        std::atomic<bool> read_now{!peer_stalls};
        constexpr std::uint32_t markers = 3;
        FrameChecker checker;
        std::thread reader([&] {
            while (!read_now.load()) std::this_thread::sleep_for(1ms);
            checker.run(link.raw, markers);
        });

        struct Tally {
            std::uint32_t accepted = 0;
            std::uint64_t full = 0, not_found = 0, disconnected = 0, other = 0;
            std::error_code first_other;
        };
        std::array<Tally, 4> tallies{};
        std::atomic<std::uint64_t> accepted_total{0};
        std::atomic<bool> removed{false};
        std::vector<std::thread> senders;
        for (std::uint8_t s = 0; s < 4; ++s) {
            senders.emplace_back([&, s] {
                Tally& t = tallies[s];
                // Two send by id, two through a bound sender.
                auto bound = s >= 2 ? m.connection_sender("peer") : decltype(m)::ConnectionSender();
                for (;;) {
                    auto result = s >= 2 ? bound.send(checked_frame(s, t.accepted))
                                         : m.send("peer", checked_frame(s, t.accepted));
                    if (result.ok()) {
                        ++t.accepted;
                        accepted_total.fetch_add(1, std::memory_order_relaxed);
                    } else if (result.error == mesh::errc::queue_full) {
                        ++t.full;
                        if (removed.load()) break;
                    } else if (result.error == mesh::errc::not_found) {
                        ++t.not_found;  // removed: it is no longer the mesh's
                        break;
                    } else if (result.error == mesh::errc::disconnected) {
                        ++t.disconnected;
                        break;
                    } else {
                        if (t.other++ == 0) t.first_other = result.error;
                        break;
                    }
                }
            });
        }
        // Remove once plenty has gone through; with a stalled peer, once the writer is
        // stuck on a full socket (nothing more is written while the senders push).
        const std::uint64_t threshold = peer_stalls ? 1000 : 2000 + static_cast<std::uint64_t>(round) * 1500;
        REQUIRE(mesh_test::wait_until([&] { return accepted_total.load() >= threshold; }, 20s));
        if (peer_stalls) REQUIRE(mesh_test::settled(m, "peer", 100ms));
        auto connection = m.remove("peer");
        removed.store(true);
        for (auto& t : senders) t.join();
        read_now.store(true);

        // On its own now: it writes the rest of the cut batch, then these.
        REQUIRE(connection.is_open());
        for (std::uint32_t k = 0; k < markers; ++k) {
            mesh::Payload marker(5, 0);
            marker[0] = marker_sender;
            marker[1] = static_cast<std::uint8_t>(k);
            REQUIRE(connection.send(marker) == std::error_code());
        }
        reader.join();

        std::uint64_t accepted = 0, full = 0;
        for (std::size_t s = 0; s < tallies.size(); ++s) {
            CAPTURE(s);
            CHECK_MESSAGE(tallies[s].other == 0, tallies[s].first_other.message());
            CHECK(tallies[s].disconnected == 0);
            CHECK(checker.received[s] <= tallies[s].accepted);
            accepted += tallies[s].accepted;
            full += tallies[s].full;
        }
        CHECK_MESSAGE(checker.first_problem.empty(), checker.first_problem);
        CHECK(checker.markers == markers);
        CHECK(checker.bad_header == 0);
        CHECK(checker.torn == 0);
        CHECK(checker.out_of_order == 0);
        CHECK(checker.after_marker == 0);

        // What the mesh counted for it (its totals keep a removed connection's counters).
        const auto stats = m.stats();
        const std::uint64_t received = checker.total();
        CAPTURE(accepted);
        CAPTURE(received);
        CAPTURE(stats.messages_out);
        CAPTURE(stats.discarded);
        // try_send counts a refusal after the sender has left the connection's gate,
        // and remove() copies the counters into the totals once the gate is empty: a
        // refusal racing remove() can be lost, at most one per sender. Rare (about one
        // round in a hundred here), so it is only warned about.
        WARN_MESSAGE(stats.rejected_full == full,
                     "queue_full refusals lost from the totals: " << full - stats.rejected_full);
        CHECK(stats.rejected_full <= full);
        CHECK(stats.rejected_full + tallies.size() >= full);
        CHECK(stats.connections == 0);
        // Every accepted message reached the peer or was counted as discarded; a batch
        // cut short counts as written (the removed connection finishes it).
        CHECK(received + stats.discarded == accepted);
        CHECK(stats.messages_out + stats.discarded == accepted);
        CHECK(stats.messages_out == received);
        MESSAGE("round " << round << (peer_stalls ? " (peer stalled)" : " (peer reading)") << ": " << accepted
                         << " accepted, " << full << " refused as full, " << stats.messages_out << " written, "
                         << stats.discarded << " discarded");
        connection.disconnect();
    }
}

// A write pending when remove() comes is cut short inside the stream; the connection
// writes the rest before its own next frame, and the mesh counts that batch as written.
TEST_CASE("a write cut short by remove: finished by the connection, counted as written") {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Outgoing64> m;
    auto link = mesh_test::raw_link(tcp, Role::dialed);
    m.add(std::move(link.connection), "peer");
    // The peer does not read yet: a write waits on the full socket, the queue fills.
    std::uint32_t accepted = 0;
    for (int quiet = 0; quiet < 100;) {
        if (m.send("peer", checked_frame(0, accepted)).ok()) {
            ++accepted;
            quiet = 0;
        } else {
            ++quiet;
            std::this_thread::sleep_for(1ms);
        }
    }
    REQUIRE(mesh_test::settled(m, "peer"));
    auto connection = m.remove("peer");
    const auto stats = m.stats();
    // What the mesh's writes put on the wire, read before the connection writes again.
    FrameChecker checker;
    checker.already_read = read_until_quiet(link.raw, 300ms);
    const std::uint64_t counted_bytes = stats.bytes_out + 7 * stats.messages_out;
    CAPTURE(accepted);
    CAPTURE(stats.messages_out);
    CAPTURE(stats.discarded);
    CAPTURE(checker.already_read.size());
    CAPTURE(counted_bytes);
    CHECK(checker.already_read.size() < counted_bytes);  // the batch was cut: its rest waits in the connection
    std::thread reader([&] { checker.run(link.raw, 1); });
    mesh::Payload marker(5, 0);
    marker[0] = marker_sender;
    REQUIRE(connection.send(marker) == std::error_code());
    reader.join();
    CAPTURE(checker.total());
    CHECK_MESSAGE(checker.first_problem.empty(), checker.first_problem);
    CHECK(checker.markers == 1);
    CHECK(stats.discarded == Outgoing64::outgoing_capacity);  // what still waited in the queue
    CHECK(checker.total() == stats.messages_out);
    CHECK(stats.messages_out + stats.discarded == accepted);
}

TEST_CASE("shutdown with queues full and receivers blocked: bounded, every receiver woken, the report adds up") {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp, Outgoing64> m;
    constexpr std::size_t peers = 2;
    std::vector<mesh_test::RawLink> links;
    for (std::size_t k = 0; k < peers; ++k) {
        links.push_back(mesh_test::raw_link(tcp, Role::dialed));
        m.add(std::move(links.back().connection), "p" + std::to_string(k));
    }
    // The peers never read: socket buffers fill, a write waits, the queues fill.
    std::uint64_t accepted = 0;
    for (std::size_t k = 0; k < peers; ++k) {
        const std::string id = "p" + std::to_string(k);
        for (int quiet = 0; quiet < 100;) {
            if (m.send(id, mesh::Payload(8 * 1024, static_cast<std::uint8_t>(k))).ok()) {
                ++accepted;
                quiet = 0;
            } else {
                ++quiet;
                std::this_thread::sleep_for(1ms);
            }
        }
        REQUIRE(mesh_test::settled(m, id));
        CHECK(m.stats(id).queue_depth == Outgoing64::outgoing_capacity);
    }

    // Three copies, a receiver blocked on each.
    std::vector<mesh::Mesh<mesh::Tcp, Outgoing64>> copies(3, m);
    std::array<std::error_code, 3> woke{};
    std::atomic<int> entered{0}, returned{0};
    std::vector<std::thread> receivers;
    for (std::size_t i = 0; i < copies.size(); ++i) {
        receivers.emplace_back([&, i] {
            mesh::Envelope envelope;
            ++entered;
            woke[i] = copies[i].recv(envelope);
            ++returned;
        });
    }
    REQUIRE(mesh_test::wait_until([&] { return entered.load() == 3; }));
    CHECK(returned.load() == 0);

    const auto start = Clock::now();
    const auto report = m.shutdown(200ms);
    const auto took = Clock::now() - start;
    const bool all_woke = mesh_test::wait_until([&] { return returned.load() == 3; }, 5s);
    CHECK(all_woke);
    for (auto& r : receivers) {
        if (all_woke) r.join();
        else r.detach();  // the failure is reported; do not hang on it
    }
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(took).count());
    CHECK(took < 2s);
    CHECK(took >= 190ms);  // the peers never read, so the whole flush time passes
    for (const auto& ec : woke) CHECK(ec == mesh::errc::shut_down);

    const auto stats = m.stats();
    CAPTURE(accepted);
    CAPTURE(stats.messages_out);
    CHECK(report.discarded_outgoing == accepted - stats.messages_out);
    CHECK(report.discarded_outgoing >= peers * Outgoing64::outgoing_capacity);
    CHECK(report.discarded_incoming == 0);
    CHECK(m.send("p0", mesh::to_payload("late")).error == mesh::errc::shut_down);
    mesh::Envelope envelope;
    CHECK(copies[1].recv(envelope) == mesh::errc::shut_down);
    // The peers see the end of the stream after what was written.
    for (auto& link : links) CHECK(link.raw.wait_closed());
}

} // TEST_SUITE("faults")
