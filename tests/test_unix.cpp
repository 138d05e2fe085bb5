#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/raw_peer.hpp"
#include "support/samples.hpp"
#include "support/tcp_peers.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

using namespace std::chrono_literals;
using mesh_test::Bytes;
using mesh_test::hex;

using mesh_test::hello;
using mesh_test::world;
namespace {

// Socket paths in a fresh directory per test.
struct ScratchDir : mesh_test::TempDir {
    std::string endpoint(const std::string& name) const { return "unix://" + file(name); }
};

bool exists(const std::string& path) {
    struct stat info {};
    return ::lstat(path.c_str(), &info) == 0;
}

bool is_socket(const std::string& path) {
    struct stat info {};
    return ::lstat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode);
}

ino_t inode_of(const std::string& path) {
    struct stat info {};
    return ::lstat(path.c_str(), &info) == 0 ? info.st_ino : 0;
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary);
    out << content;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

sockaddr_un address_of(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    return address;
}

// A raw AF_UNIX socket bound to `path`, listening when backlog >= 0; never unlinked by us.
mesh_test::RawSocket raw_bound(const std::string& path, int backlog = -1) {
    mesh_test::RawSocket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto address = address_of(path);
    if (!s.valid() || ::bind(s.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0)
        return mesh_test::RawSocket();
    if (backlog >= 0 && ::listen(s.fd(), backlog) != 0) return mesh_test::RawSocket();
    return s;
}

// A raw AF_UNIX client, optionally bound to a name of its own first.
mesh_test::RawSocket raw_unix_connect(const std::string& path, const std::string& own_path = "") {
    mesh_test::RawSocket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return s;
    if (!own_path.empty()) {
        const auto own = address_of(own_path);
        if (::bind(s.fd(), reinterpret_cast<const sockaddr*>(&own), sizeof(own)) != 0) return mesh_test::RawSocket();
    }
    const auto address = address_of(path);
    if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0)
        return mesh_test::RawSocket();
    return s;
}

// Leaves a socket file behind as a crashed process would: bound (and maybe
// listening), then closed without unlinking.
void make_stale_socket(const std::string& path, bool listened) {
    auto s = raw_bound(path, listened ? 4 : -1);
    REQUIRE(s.valid());
    s.close();
    REQUIRE(is_socket(path));
}

struct UnixPair {
    mesh::UnixConnection client, server;
};

// A connection made through the transport; `listener` accepts on a thread so
// that a failed connect cannot leave it blocked (a raw client is sent in).
UnixPair unix_pair(mesh::Unix& transport, mesh::UnixListener& listener) {
    UnixPair pair;
    std::error_code accept_ec, connect_ec;
    std::atomic<bool> accepted{false};
    std::thread acceptor([&] {
        pair.server = listener.accept(accept_ec);
        accepted = true;
    });
    pair.client = transport.connect(listener.endpoint(), connect_ec);
    if (!mesh_test::wait_until([&] { return accepted.load(); }, 5s))
        raw_unix_connect(std::string(mesh::detail::endpoint_address(listener.endpoint())));
    acceptor.join();
    REQUIRE_MESSAGE(!connect_ec, connect_ec.message());
    REQUIRE_MESSAGE(!accept_ec, accept_ec.message());
    return pair;
}

// One round trip over a fresh connection: the listener serves.
void check_serves(mesh::Unix& transport, mesh::UnixListener& listener) {
    auto pair = unix_pair(transport, listener);
    REQUIRE(pair.client.send(hello) == std::error_code());
    mesh::Payload got;
    REQUIRE(pair.server.recv_for(got, 10s) == std::error_code());
    CHECK(got == hello);
}

} // namespace

TEST_CASE("unix: accepts unix:// only - not tcp://, tcps://, inproc:// or a bare address") {
    CHECK(mesh::Unix::accepts("unix:///tmp/x.sock"));
    CHECK(mesh::Unix::accepts("unix://relative.sock"));
    CHECK_FALSE(mesh::Unix::accepts("tcp://127.0.0.1:0"));
    CHECK_FALSE(mesh::Unix::accepts("tcps://127.0.0.1:0"));
    CHECK_FALSE(mesh::Unix::accepts("127.0.0.1:0"));
    CHECK_FALSE(mesh::Unix::accepts("/tmp/x.sock"));
    CHECK_FALSE(mesh::Unix::accepts("inproc://name"));
    CHECK_FALSE(mesh::Unix::accepts("unix:/tmp/x.sock"));
    // And the TCP transport does not take unix:// for a host name.
    CHECK_FALSE(mesh::Tcp::accepts("unix:///tmp/x.sock"));

    mesh::Unix transport;
    std::error_code ec;
    transport.listen("tcp://127.0.0.1:0", ec);
    CHECK(ec == mesh::errc::unknown_scheme);
    transport.connect("/tmp/x.sock", ec);
    CHECK(ec == mesh::errc::unknown_scheme);
    CHECK_THROWS_AS(transport.listen("inproc://name"), std::system_error);
}

// Splinter's transport harness (section 5.3) over a socket path.
TEST_CASE("unix: transport harness - [0,1,2] and [3,4,5] both ways, the client names the listener's endpoint") {
    ScratchDir dir;
    mesh::Unix transport;
    const std::string bind = dir.endpoint("harness.sock");
    auto listener = transport.listen(bind);
    const std::string endpoint = listener.endpoint();
    CHECK(endpoint == bind);
    CHECK(is_socket(dir.file("harness.sock")));

    std::string client_remote, client_local;
    mesh::Payload client_got;
    std::error_code client_ec, client_send_ec, client_recv_ec;
    std::thread client([&] {
        auto connection = transport.connect(endpoint, client_ec);
        if (client_ec) return;
        client_remote = connection.remote_endpoint();
        client_local = connection.local_endpoint();
        client_send_ec = connection.send({0, 1, 2});
        client_recv_ec = connection.recv_for(client_got, 10s);
    });
    std::error_code ec, server_recv_ec, server_send_ec;
    mesh::UnixConnection server;
    mesh::Payload got;
    std::thread server_side([&] {
        server = listener.accept(ec);
        if (ec) return;
        server_recv_ec = server.recv_for(got, 10s);
        server_send_ec = server.send({3, 4, 5});
    });
    client.join();
    if (client_ec) raw_unix_connect(dir.file("harness.sock"));  // frees a blocked accept
    server_side.join();

    REQUIRE_MESSAGE(!client_ec, client_ec.message());
    REQUIRE_MESSAGE(!ec, ec.message());
    CHECK(!server_recv_ec);
    CHECK(got == mesh::Payload{0, 1, 2});
    CHECK(!server_send_ec);
    CHECK(client_remote == endpoint);
    CHECK(!client_send_ec);
    CHECK(!client_recv_ec);
    CHECK(client_got == mesh::Payload{3, 4, 5});
    // The connecting side has no name of its own: it names the path it dialled.
    CHECK(client_local == endpoint);
    CHECK(server.local_endpoint() == endpoint);
    // Its unnamed peer is told apart by a suffix.
    CHECK(server.remote_endpoint().rfind(endpoint + "#", 0) == 0);
    CHECK(server.remote_endpoint().size() > endpoint.size() + 1);
}

TEST_CASE("unix: a stale socket file is replaced - bound only, or listened on and closed without unlink") {
    ScratchDir dir;
    mesh::Unix transport;
    const std::string path = dir.file("stale.sock");
    SUBCASE("bound, never listened") { make_stale_socket(path, false); }
    SUBCASE("listened, closed without unlink") { make_stale_socket(path, true); }
    std::error_code ec;
    auto listener = transport.listen("unix://" + path, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    CHECK(is_socket(path));
    // Serving proves a live socket now sits where the dead one refused connections.
    check_serves(transport, listener);
}

TEST_CASE("unix: a live listener's path is address_in_use - and the live one keeps serving") {
    ScratchDir dir;
    mesh::Unix transport;
    const std::string endpoint = dir.endpoint("live.sock");
    SUBCASE("a listener of this library, accepting on a mesh") {
        auto first = transport.listen(endpoint);
        const auto inode = inode_of(dir.file("live.sock"));
        mesh::Mesh<mesh::Unix> m;
        m.accept_from(std::move(first));
        std::error_code ec;
        auto second = transport.listen(endpoint, ec);
        CHECK(ec == mesh::errc::address_in_use);
        CHECK(ec == std::errc::address_in_use);
        CHECK_THROWS_AS(transport.listen(endpoint), std::system_error);
        CHECK(inode_of(dir.file("live.sock")) == inode);
        // A failed listener must not take the live one's file with it.
        second.close();
        CHECK(inode_of(dir.file("live.sock")) == inode);
        auto client = transport.connect(endpoint, ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        auto event = mesh_test::next_event(m, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
        REQUIRE(client.send(hello) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(m.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope == mesh::Envelope(event->id, hello));
    }
    SUBCASE("a raw listener whose backlog is full: refused at once, not waited on") {
        auto raw = raw_bound(dir.file("live.sock"), 0);
        REQUIRE(raw.valid());
        // Fill the backlog with connections nobody accepts.
        std::vector<mesh_test::RawSocket> fillers;
        const auto address = address_of(dir.file("live.sock"));
        for (int i = 0; i < 64; ++i) {
            mesh_test::RawSocket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            const int rc = ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
            if (rc != 0) break;  // EAGAIN: the backlog is full
            fillers.push_back(std::move(s));
        }
        auto listening = std::async(std::launch::async, [&] {
            std::error_code ec;
            transport.listen(endpoint, ec);
            return ec;
        });
        const bool answered = listening.wait_for(5s) == std::future_status::ready;
        // If listen hangs, accepting one filler lets its probe through, so the test ends.
        if (!answered) mesh_test::RawSocket(::accept(raw.fd(), nullptr, nullptr));
        CHECK(answered);
        CHECK(listening.get() == mesh::errc::address_in_use);
        CHECK(is_socket(dir.file("live.sock")));
    }
}

TEST_CASE("unix: a regular file, a directory or a symlink at the path is address_in_use and left untouched") {
    ScratchDir dir;
    mesh::Unix transport;
    std::error_code ec;

    write_file(dir.file("file"), "precious");
    transport.listen(dir.endpoint("file"), ec);
    CHECK(ec == mesh::errc::address_in_use);
    CHECK(read_file(dir.file("file")) == "precious");

    REQUIRE(::mkdir(dir.file("directory").c_str(), 0700) == 0);
    write_file(dir.file("directory") + "/inside", "kept");
    transport.listen(dir.endpoint("directory"), ec);
    CHECK(ec == mesh::errc::address_in_use);
    CHECK(std::filesystem::is_directory(dir.file("directory")));
    CHECK(read_file(dir.file("directory") + "/inside") == "kept");

    // A symlink, even to a stale socket, is not ours to replace.
    make_stale_socket(dir.file("target.sock"), false);
    REQUIRE(::symlink(dir.file("target.sock").c_str(), dir.file("link").c_str()) == 0);
    transport.listen(dir.endpoint("link"), ec);
    CHECK(ec == mesh::errc::address_in_use);
    CHECK(std::filesystem::is_symlink(dir.file("link")));
    CHECK(is_socket(dir.file("target.sock")));
}

TEST_CASE("unix: the listener removes its socket file on close and on destruction - a moved-from one does not") {
    ScratchDir dir;
    mesh::Unix transport;
    const std::string path = dir.file("owned.sock");
    SUBCASE("close") {
        auto listener = transport.listen("unix://" + path);
        CHECK(is_socket(path));
        listener.close();
        CHECK_FALSE(exists(path));
        listener.close();  // twice is harmless
        std::error_code ec;
        transport.connect("unix://" + path, ec);
        CHECK(ec == mesh::errc::connection_refused);
    }
    SUBCASE("destruction") {
        {
            auto listener = transport.listen("unix://" + path);
            CHECK(is_socket(path));
        }
        CHECK_FALSE(exists(path));
    }
    SUBCASE("a move hands the file over") {
        mesh::UnixListener moved;
        {
            auto listener = transport.listen("unix://" + path);
            moved = std::move(listener);
        }
        CHECK(is_socket(path));
        check_serves(transport, moved);
        moved.close();
        CHECK_FALSE(exists(path));
    }
    // The path is free for the next listener.
    auto again = transport.listen("unix://" + path);
    CHECK(is_socket(path));
}

TEST_CASE("unix: a listener given to a mesh with accept_from removes its socket file when the mesh shuts down") {
    ScratchDir dir;
    mesh::Unix transport;
    const std::string path = dir.file("mesh.sock");
    SUBCASE("explicit shutdown") {
        mesh::Mesh<mesh::Unix> m;
        m.accept_from(transport.listen("unix://" + path));
        auto client = transport.connect("unix://" + path);  // the mesh is serving it
        REQUIRE(mesh_test::next_event(m, 10s).has_value());
        CHECK(is_socket(path));
        m.shutdown();
        CHECK_FALSE(exists(path));
        mesh::Payload got;
        CHECK(client.recv_for(got, 10s) == mesh::errc::end_of_stream);
    }
    SUBCASE("the last copy of the mesh goes away") {
        {
            mesh::Mesh<mesh::Unix> m;
            m.accept_from(transport.listen("unix://" + path));
            auto client = transport.connect("unix://" + path);
            REQUIRE(mesh_test::next_event(m, 10s).has_value());
            CHECK(is_socket(path));
        }
        CHECK_FALSE(exists(path));
    }
    std::error_code ec;
    transport.connect("unix://" + path, ec);
    CHECK(ec == mesh::errc::connection_refused);
}

TEST_CASE("unix: a listener does not remove a file that replaced its socket after it bound") {
    ScratchDir dir;
    mesh::Unix transport;
    const std::string path = dir.file("replaced.sock");
    auto first = transport.listen("unix://" + path);
    REQUIRE(::unlink(path.c_str()) == 0);
    SUBCASE("by a regular file") {
        write_file(path, "someone else's");
        first.close();
        CHECK(read_file(path) == "someone else's");
    }
    SUBCASE("by another listener") {
        auto second = transport.listen("unix://" + path);
        const auto inode = inode_of(path);
        first.close();
        CHECK(inode_of(path) == inode);
        check_serves(transport, second);
        second.close();
        CHECK_FALSE(exists(path));
    }
}

TEST_CASE("unix: connect to a missing path, a stale socket or a regular file is connection_refused") {
    ScratchDir dir;
    mesh::Unix transport;
    std::error_code ec;
    auto connection = transport.connect(dir.endpoint("missing.sock"), ec);
    CHECK(ec == mesh::errc::connection_refused);
    CHECK(ec == std::errc::connection_refused);
    CHECK_FALSE(connection.is_open());
    CHECK_THROWS_AS(transport.connect(dir.endpoint("missing.sock")), std::system_error);

    make_stale_socket(dir.file("stale.sock"), true);
    transport.connect(dir.endpoint("stale.sock"), ec);
    CHECK(ec == mesh::errc::connection_refused);

    write_file(dir.file("plain"), "x");
    transport.connect(dir.endpoint("plain"), ec);
    CHECK(ec == mesh::errc::connection_refused);
}

TEST_CASE("unix: a path too long for sockaddr_un is invalid_endpoint - the longest that fits works") {
    ScratchDir dir;
    mesh::Unix transport;
    constexpr std::size_t capacity = sizeof(sockaddr_un::sun_path);  // includes the terminating NUL
    const std::string prefix = dir.file("");
    REQUIRE(prefix.size() < capacity - 1);
    const std::string longest = prefix + std::string(capacity - 1 - prefix.size(), 'L');
    const std::string too_long = prefix + std::string(capacity - prefix.size(), 'T');
    REQUIRE(longest.size() == capacity - 1);

    std::error_code ec;
    transport.listen("unix://" + too_long, ec);
    CHECK(ec == mesh::errc::invalid_endpoint);
    transport.connect("unix://" + too_long, ec);
    CHECK(ec == mesh::errc::invalid_endpoint);
    transport.listen("unix://" + prefix + std::string(300, 'x'), ec);
    CHECK(ec == mesh::errc::invalid_endpoint);
    CHECK_FALSE(exists(too_long.substr(0, capacity - 1)));  // nothing was bound under a cut name

    for (const std::string& bad : {std::string("unix://"), std::string("unix://a\0b", 10)}) {
        transport.listen(bad, ec);
        CHECK(ec == mesh::errc::invalid_endpoint);
        transport.connect(bad, ec);
        CHECK(ec == mesh::errc::invalid_endpoint);
    }

    auto listener = transport.listen("unix://" + longest, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    CHECK(listener.endpoint() == "unix://" + longest);
    check_serves(transport, listener);
}

TEST_CASE("unix: accept_from gives 20 clients 20 distinct ids and delivers both ways") {
    ScratchDir dir;
    mesh::Unix transport;
    mesh::Mesh<mesh::Unix> server;
    const std::string endpoint = dir.endpoint("many.sock");
    server.accept_from(transport.listen(endpoint));

    std::vector<mesh::UnixConnection> clients;
    for (int i = 0; i < 20; ++i) {
        std::error_code ec;
        clients.push_back(transport.connect(endpoint, ec));
        REQUIRE_MESSAGE(!ec, ec.message());
    }
    std::set<std::string> connected;
    for (int i = 0; i < 20; ++i) {
        auto event = mesh_test::next_event(server, 10s);
        REQUIRE(event.has_value());
        CHECK(event->kind == mesh::ConnectionEvent::Kind::connected);
        // Unnamed peers: the listener's endpoint and a distinguishing suffix.
        CHECK(event->id.rfind(endpoint + "#", 0) == 0);
        connected.insert(event->id);
    }
    CHECK(connected.size() == 20);
    CHECK(server.stats().connections == 20);

    for (int i = 0; i < 20; ++i)
        REQUIRE(clients[i].send(mesh::to_payload("ping " + std::to_string(i))) == std::error_code());
    std::vector<std::string> id_of(20);
    for (int i = 0; i < 20; ++i) {
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        const int from = std::stoi(mesh_test::text(envelope.payload).substr(5));
        REQUIRE(from >= 0);
        REQUIRE(from < 20);
        CHECK(id_of[from].empty());
        id_of[from] = envelope.id;
        CHECK(connected.count(envelope.id) == 1);
    }
    CHECK(std::set<std::string>(id_of.begin(), id_of.end()).size() == 20);
    for (int i = 0; i < 20; ++i) CHECK(server.send(id_of[i], mesh::to_payload("pong " + std::to_string(i))).ok());
    for (int i = 0; i < 20; ++i) {
        mesh::Payload got;
        REQUIRE(clients[i].recv_for(got, 10s) == std::error_code());
        CHECK(mesh_test::text(got) == "pong " + std::to_string(i));
    }
}

// A disconnected peer stays registered until removed; its descriptor number is
// free again at once, so an id built from it would collide with the next client.
TEST_CASE("unix: accept_from ids stay unique after peers disconnect and descriptors are reused") {
    ScratchDir dir;
    mesh::Unix transport;
    mesh::Mesh<mesh::Unix> server;
    const std::string endpoint = dir.endpoint("reuse.sock");
    server.accept_from(transport.listen(endpoint));
    std::set<std::string> ids;
    for (int round = 0; round < 4; ++round) {
        CAPTURE(round);
        auto client = transport.connect(endpoint);
        auto connected = mesh_test::next_event(server, 5s);
        REQUIRE(connected.has_value());
        CHECK(connected->kind == mesh::ConnectionEvent::Kind::connected);
        CHECK(ids.insert(connected->id).second);
        REQUIRE(client.send(hello) == std::error_code());
        mesh::Envelope envelope;
        REQUIRE(server.recv_timeout(envelope, 10s) == std::error_code());
        CHECK(envelope == mesh::Envelope(connected->id, hello));
        client.disconnect();
        auto gone = mesh_test::next_event(server, 10s);
        REQUIRE(gone.has_value());
        CHECK(gone->kind == mesh::ConnectionEvent::Kind::disconnected);
        CHECK(gone->id == connected->id);
    }
    CHECK(server.stats().connections == 0);  // each was forgotten once it died
    CHECK(server.stats().messages_in == 4);
}

TEST_CASE("unix: a client bound to a path of its own is named by it") {
    ScratchDir dir;
    mesh::Unix transport;
    auto listener = transport.listen(dir.endpoint("server.sock"));
    mesh_test::RawSocket raw;
    std::thread client([&] {
        raw = raw_unix_connect(dir.file("server.sock"), dir.file("client.sock"));
        if (raw.valid()) raw.write_all(mesh_test::raw_hello(1, 1));
    });
    std::error_code ec;
    auto connection = listener.accept(ec);
    client.join();
    REQUIRE(raw.valid());
    REQUIRE_MESSAGE(!ec, ec.message());
    CHECK(hex(raw.read_exact(2)) == "00 01");
    CHECK(connection.remote_endpoint() == dir.endpoint("client.sock"));
    CHECK(connection.local_endpoint() == dir.endpoint("server.sock"));
}

TEST_CASE("unix: the handshake and frames are tcp://'s, byte for byte, in both roles") {
    ScratchDir dir;
    mesh::Unix transport;
    SUBCASE("accepted: a raw client says hello with a frame right behind it") {
        auto listener = transport.listen(dir.endpoint("accepting.sock"));
        auto peer = raw_unix_connect(dir.file("accepting.sock"));
        REQUIRE(peer.valid());
        Bytes bytes = mesh_test::raw_hello(1, 1);
        mesh_test::append(bytes, mesh_test::raw_frame(mesh::to_payload("early")));
        mesh_test::append(bytes, mesh_test::raw_frame({}));
        mesh_test::append(bytes, mesh_test::raw_frame(mesh::Payload(70000, 0xAB)));
        REQUIRE(peer.write_all(bytes));
        std::error_code ec;
        auto connection = listener.accept(ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(hex(peer.read_exact(2)) == "00 01");
        CHECK(peer.quiet_for(20ms));  // nothing but the reply
        mesh::Payload got;
        REQUIRE(connection.recv_for(got, 10s) == std::error_code());
        CHECK(got == mesh::to_payload("early"));
        REQUIRE(connection.recv_for(got, 10s) == std::error_code());
        CHECK(got.empty());
        REQUIRE(connection.recv_for(got, 10s) == std::error_code());
        CHECK(got == mesh::Payload(70000, 0xAB));
        // The worked example of section 4.3.2.
        REQUIRE(connection.send(hello) == std::error_code());
        CHECK(hex(peer.read_exact(12)) == "00 01 00 00 00 05 FA 68 65 6C 6C 6F");
        REQUIRE(connection.send({}) == std::error_code());
        CHECK(hex(peer.read_exact(7)) == "00 01 00 00 00 00 FF");
        peer.close();
        CHECK(connection.recv_for(got, 10s) == mesh::errc::end_of_stream);
    }
    SUBCASE("accepted: a range without v1 is answered 00 00 and closed") {
        auto listener = transport.listen(dir.endpoint("refusing.sock"));
        auto peer = raw_unix_connect(dir.file("refusing.sock"));
        REQUIRE(peer.valid());
        REQUIRE(peer.write_all(mesh_test::raw_hello(3, 5)));
        std::error_code ec;
        auto connection = listener.accept(ec);
        CHECK(ec == mesh::errc::unsupported_version);
        CHECK(hex(peer.read_exact(2)) == "00 00");
        CHECK(peer.wait_closed(5s));
    }
    SUBCASE("dialed: we say 00 01 00 01 and wait for the reply") {
        auto raw_listener = raw_bound(dir.file("raw.sock"), 4);
        REQUIRE(raw_listener.valid());
        Bytes hello_bytes;
        bool early = false;
        mesh_test::RawSocket peer;
        std::thread raw([&] {
            pollfd p{raw_listener.fd(), POLLIN, 0};
            if (::poll(&p, 1, 10000) != 1) return;
            peer = mesh_test::RawSocket(::accept(raw_listener.fd(), nullptr, nullptr));
            hello_bytes = peer.read_exact(4);
            early = !peer.quiet_for(50ms);  // nothing may come before our reply
            Bytes reply = mesh_test::raw_reply(1);
            mesh_test::append(reply, mesh_test::raw_frame(mesh::to_payload("first")));
            peer.write_all(reply);
        });
        std::error_code ec;
        auto connection = transport.connect(dir.endpoint("raw.sock"), ec);
        raw.join();
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(hex(hello_bytes) == "00 01 00 01");
        CHECK_FALSE(early);
        CHECK(connection.remote_endpoint() == dir.endpoint("raw.sock"));
        mesh::Payload got;
        REQUIRE(connection.recv_for(got, 10s) == std::error_code());
        CHECK(got == mesh::to_payload("first"));
        REQUIRE(connection.send({0x08, 0x02}) == std::error_code());  // Splinter's heartbeat
        CHECK(hex(peer.read_exact(9)) == "00 01 00 00 00 02 FD 08 02");
    }
}

TEST_CASE("unix: a mesh reads a raw peer's frames and reports its close once") {
    ScratchDir dir;
    mesh::Unix transport;
    mesh::Mesh<mesh::Unix> m;
    auto listener = transport.listen(dir.endpoint("mesh.sock"));
    auto peer = raw_unix_connect(dir.file("mesh.sock"));
    REQUIRE(peer.valid());
    REQUIRE(peer.write_all(mesh_test::raw_hello(1, 1)));
    std::error_code ec;
    auto connection = listener.accept(ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    REQUIRE(hex(peer.read_exact(2)) == "00 01");
    m.add(std::move(connection), "raw");

    const auto stream = mesh_test::make_stream(2000, 7);
    bool wrote = false;
    std::thread writer([&] { wrote = peer.write_chunked(stream.wire, 1000, 20s); });
    std::size_t matched = 0;
    for (const auto& expected : stream.messages) {
        mesh::Envelope envelope;
        if (m.recv_timeout(envelope, 10s)) break;
        if (envelope.id == "raw" && envelope.payload == expected) ++matched;
    }
    writer.join();
    CHECK(wrote);
    CHECK(matched == stream.messages.size());
    REQUIRE(m.send("raw", mesh::Payload(world)).ok());
    CHECK(peer.read_exact(12) == mesh_test::raw_frame(world));
    peer.close();
    auto event = mesh_test::next_event(m, 10s);
    REQUIRE(event.has_value());
    CHECK(event->kind == mesh::ConnectionEvent::Kind::disconnected);
    CHECK(event->reason == mesh::errc::end_of_stream);
    mesh::ConnectionEvent none;
    CHECK(m.next_event(none, 50ms) == mesh::errc::timeout);
}
