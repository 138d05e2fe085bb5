// The throwing forms of setup calls say what they were about and, where the error code
// alone does not, why: the endpoint and what is wrong with it, the id, the stage of a
// connect that failed.
#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#if MESH_HAS_TLS
#include "support/test_pki.hpp"
#include "support/tls_peers.hpp"
#endif

#include <chrono>
#include <string>
#include <system_error>

namespace {

using namespace std::chrono_literals;

// The message of what `call` throws, or "" when it throws nothing.
template <class Call>
std::string thrown(Call&& call) {
    try {
        call();
    } catch (const std::system_error& e) {
        return e.what();
    }
    return "";
}

// A listener whose connections are never accepted: the kernel completes the TCP
// connect, and nothing ever answers after that.
mesh::StreamOptions quick_handshake() {
    mesh::StreamOptions options;
    options.handshake_timeout = 300ms;
    return options;
}

} // namespace

TEST_SUITE("error messages") {

TEST_CASE("an invalid endpoint is named, with what is wrong with it") {
    mesh::Tcp tcp;
    struct Case {
        const char* endpoint;
        const char* why;
    };
    for (const Case& c : {Case{"127.0.0.1:notaport", "the port is not a number"},
                          Case{"127.0.0.1:99999", "the port is above 65535"},
                          Case{"127.0.0.1:8x", "the port is not a number"},
                          Case{"tcp://127.0.0.1", "no ':port' after the host"},
                          Case{"tcp://:80", "no host before the port"},
                          Case{"127.0.0.1:", "no port after the ':'"},
                          Case{"tcp://[::1", "no ']' after the IPv6 address"},
                          Case{"tcp://[::1]80", "no ':port' after the IPv6 address"}}) {
        CAPTURE(c.endpoint);
        const std::string connect = thrown([&] { (void)tcp.connect(c.endpoint); });
        CHECK(connect == "connect \"" + std::string(c.endpoint) + "\" (" + c.why + "): invalid endpoint");
        const std::string listen = thrown([&] { (void)tcp.listen(c.endpoint); });
        CHECK(listen == "listen \"" + std::string(c.endpoint) + "\" (" + c.why + "): invalid endpoint");
    }
    mesh::Unix unix_transport;
    CHECK(thrown([&] { (void)unix_transport.connect("unix://"); }) ==
          "connect \"unix://\" (no socket path): invalid endpoint");
}

TEST_CASE("an error with nothing more to say names the call and its subject only") {
    mesh::Tcp tcp;
    auto taken = tcp.listen("127.0.0.1:0");
    const std::string endpoint = taken.endpoint();
    const std::string message = thrown([&] { (void)tcp.listen(endpoint); });
    CHECK(message.rfind("listen \"" + endpoint + "\": ", 0) == 0);
    CHECK(message.find('(') == std::string::npos);
    mesh::Multi multi;
    CHECK(thrown([&] { (void)multi.connect("foo://x"); }) == "Unknown protocol \"foo://x\": unknown protocol scheme");
}

TEST_CASE("a duplicate or unknown id is named") {
    mesh::Inproc transport;
    auto listener = transport.listen("inproc://names");
    auto first = transport.connect(listener.endpoint());
    auto second = transport.connect(listener.endpoint());
    mesh::Mesh<mesh::Inproc> m;
    (void)m.add(std::move(first), "peer");
    CHECK(thrown([&] { (void)m.add(std::move(second), "peer"); }) == "mesh add \"peer\": duplicate connection id");
    CHECK(thrown([&] { (void)m.remove("nobody"); }) == "mesh remove \"nobody\": no connection with that id");
    CHECK(thrown([&] { (void)m.stats("nobody"); }) == "mesh stats \"nobody\": no connection with that id");
}

TEST_CASE("a connect that fails says in which stage: the socket connect") {
    mesh::Tcp tcp;
    std::string endpoint;
    {
        auto closed = tcp.listen("127.0.0.1:0");
        endpoint = closed.endpoint();
    }  // nobody listens there now
    CHECK(thrown([&] { (void)tcp.connect(endpoint); }) ==
          "connect \"" + endpoint + "\" (in the socket connect): connection refused");
}

TEST_CASE("a connect that times out says in which stage: the version handshake") {
    mesh::Tcp silent_side;
    auto silent = silent_side.listen("127.0.0.1:0");  // never accepted, never answers
    mesh::Tcp tcp(quick_handshake());
    const std::string message = thrown([&] { (void)tcp.connect(silent.endpoint()); });
    CHECK(message == "connect \"" + silent.endpoint() + "\" (in the version handshake): timed out");
}

#if MESH_HAS_TLS
TEST_CASE("a connect that times out says in which stage: the TLS handshake") {
    const mesh_test::pki::Authority ca("error messages CA");
    auto options = mesh_test::tls::secure_pem(ca.cert_pem(), ca.issue(mesh_test::tls::ip_spec("node")));
    options.stream = quick_handshake();
    mesh::Tls tls(options);
    mesh::Tcp silent_side;
    auto silent = silent_side.listen("127.0.0.1:0");
    const std::string address = silent.endpoint().substr(std::string("tcp://").size());
    const std::string message = thrown([&] { (void)tls.connect("tcps://" + address); });
    CHECK(message == "connect \"tcps://" + address + "\" (in the TLS handshake): timed out");
}
#endif

}
