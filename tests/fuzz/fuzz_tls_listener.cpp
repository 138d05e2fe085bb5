// Fuzzes a Mesh<Tls> from the network side. One mesh for the process accepts
// tcps:// on 127.0.0.1 with certificates generated at start-up (mutual TLS);
// a thread echoes every envelope back. Each input is sent by a raw client, either
// as raw bytes where the TLS handshake belongs, or inside TLS after a completed
// handshake (so the version handshake and frames behind TLS get the bytes). Then
// a healthy TLS client, connected once, must get its echo in time, and every 64th
// input (the first included, so a replayed input always does it) a new TLS client
// must connect and get its echo too: TLS handshakes cost milliseconds, and doing
// one per input would leave little time for the bytes. Every other connection
// must have been reported or failed before the next input.
//
// Input: [mode] [bytes...]
//   mode bit 0: inside TLS (else raw bytes on the TCP connection);
//        bit 1: inside TLS only: the version hello goes first;
//        bits 2-3: how the raw client leaves: 0 or 3 close (inside TLS, after a
//                  close_notify), 1 half close then wait until the mesh closes its
//                  end, 2 a reset (SO_LINGER 0).

#include <mesh/mesh.hpp>

#include "fuzz_check.hpp"
#include "support/raw_peer.hpp"
#include "support/test_pki.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <sys/socket.h>
#include <sys/time.h>

namespace {

using namespace std::chrono_literals;
using mesh_test::Bytes;
namespace pki = mesh_test::pki;

constexpr auto kDeadline = 5s;

// Both roles present `id` and trust `ca_pem`. The handshake deadline is longer
// than any wait below, so a missed close shows as a failed wait.
mesh::TlsOptions options_for(const std::string& ca_pem, const pki::Identity& id) {
    mesh::TlsOptions options;
    options.server = {{}, ca_pem, {}, id.cert_pem, {}, id.key_pem};
    options.client = options.server;
    options.stream.handshake_timeout = 10s;
    return options;
}

struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
struct SslFree {
    void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};

// A raw client's context: it shows a trusted certificate so the server lets it
// in, and trusts anything itself (it is the attacker here).
std::unique_ptr<SSL_CTX, SslCtxFree> raw_context(const pki::Identity& id) {
    std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
    FUZZ_CHECK(ctx);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    pki::detail::BioPtr cert_bio(BIO_new_mem_buf(id.cert_pem.data(), static_cast<int>(id.cert_pem.size())));
    pki::detail::CertPtr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
    pki::detail::BioPtr key_bio(BIO_new_mem_buf(id.key_pem.data(), static_cast<int>(id.key_pem.size())));
    pki::detail::KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    FUZZ_CHECK(cert && key);
    FUZZ_CHECK(SSL_CTX_use_certificate(ctx.get(), cert.get()) == 1);
    FUZZ_CHECK(SSL_CTX_use_PrivateKey(ctx.get(), key.get()) == 1);
    return ctx;
}

// Runs an OpenSSL call on a blocking socket until it is done: a signal (libFuzzer's
// timer) makes the socket BIO report a retry even there. False on failure or timeout.
template <class Op>
bool until_done(SSL* ssl, Op op) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    for (;;) {
        const int result = op();
        if (result > 0) return true;
        const int error = SSL_get_error(ssl, result);
        if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) return false;
        if (std::chrono::steady_clock::now() >= deadline) return false;
    }
}

// A blocking socket whose reads and writes give up after the deadline.
void set_timeouts(int fd) {
    timeval tv{};
    tv.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(kDeadline).count();
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

struct Harness {
    pki::Authority ca{"mesh fuzz CA"};
    pki::Identity server_id = ca.issue();
    pki::Identity client_id = ca.issue();
    mesh::Tls server_tls{options_for(ca.cert_pem(), server_id)};
    mesh::Tls client_tls{options_for(ca.cert_pem(), client_id)};
    std::unique_ptr<SSL_CTX, SslCtxFree> raw_ctx = raw_context(client_id);
    mesh::Mesh<mesh::Tls> mesh;
    std::string endpoint;
    std::shared_ptr<const mesh::ListenerStats> stats;
    std::thread echo;
    std::uint64_t dialed = 0, connected = 0, disconnected = 0, probes = 0, inputs = 0;
    mesh::TlsConnection healthy;  // stays connected across inputs

    Harness() {
        auto listener = server_tls.listen("tcps://127.0.0.1:0");
        endpoint = listener.endpoint();
        stats = listener.stats();
        mesh.accept_from(std::move(listener),
                         [n = std::uint64_t{0}](const mesh::TlsConnection&) mutable { return "t" + std::to_string(n++); });
        echo = std::thread([this] {
            mesh::Envelope envelope;
            while (!mesh.recv(envelope)) (void)mesh.send(std::move(envelope));  // a gone peer's echo is dropped
        });
        healthy = dial();
    }
    ~Harness() {
        healthy.disconnect();
        mesh.shutdown();
        echo.join();
    }

    // Every dialed connection has ended its handshake, and every accepted one but
    // the lasting healthy one has been announced, has ended and has been removed.
    bool settled() const {
        const auto accepted = stats->accepted.load();
        return accepted + stats->handshakes_failed.load() + stats->over_limit.load() == dialed &&
               connected == accepted && disconnected + 1 == connected;
    }

    void drain() {
        const auto deadline = std::chrono::steady_clock::now() + kDeadline;
        while (!settled()) {
            FUZZ_CHECK(std::chrono::steady_clock::now() < deadline);
            mesh::ConnectionEvent event;
            if (mesh.next_event(event, 2ms)) continue;
            // The ids are unique: a refusal would mean the mesh still holds one.
            FUZZ_CHECK(event.kind != mesh::ConnectionEvent::Kind::refused);
            if (event.kind == mesh::ConnectionEvent::Kind::connected) {
                ++connected;
            } else {
                ++disconnected;
                // Frees the id, unless the mesh has already forgotten the dead connection.
                std::error_code ec;
                (void)mesh.remove(event.id, ec);
                FUZZ_CHECK(!ec || ec == mesh::errc::not_found);
            }
        }
    }

    void raw_client(const std::uint8_t* data, std::size_t size) {
        const std::uint8_t mode = data[0];
        const bool inside = (mode & 1) != 0;
        const int leave = (mode >> 2) & 3;
        Bytes bytes;
        if (inside && (mode & 2)) bytes = mesh_test::raw_hello(1, 1);
        bytes.insert(bytes.end(), data + 1, data + size);

        auto raw = mesh_test::raw_connect(endpoint);
        FUZZ_CHECK(raw.valid());
        ++dialed;
        std::unique_ptr<SSL, SslFree> ssl;
        if (inside) {
            set_timeouts(raw.fd());
            ssl.reset(SSL_new(raw_ctx.get()));
            FUZZ_CHECK(ssl && SSL_set_fd(ssl.get(), raw.fd()) == 1);
            // A trusted client always gets in.
            FUZZ_CHECK(until_done(ssl.get(), [&] { return SSL_connect(ssl.get()); }));
            std::size_t written = 0;
            if (!bytes.empty())  // may fail: the mesh may close first
                until_done(ssl.get(), [&] { return SSL_write_ex(ssl.get(), bytes.data(), bytes.size(), &written); });
        } else {
            raw.write_all(bytes, 2000ms);  // may fail likewise
        }
        switch (leave) {
        case 1:
            raw.shutdown_write();
            FUZZ_CHECK(raw.wait_closed(kDeadline));  // the mesh must notice the end
            break;
        case 2: raw.reset(); break;
        default:
            if (ssl) SSL_shutdown(ssl.get());
            raw.close();
            break;
        }
        ERR_clear_error();  // nothing of this connection's failures is left for the next one
    }

    mesh::TlsConnection dial() {
        std::error_code ec;
        auto client = client_tls.connect(endpoint, ec);
        FUZZ_CHECK(!ec);
        ++dialed;
        return client;
    }

    void round_trip(mesh::TlsConnection& client) {
        const std::string text = "probe " + std::to_string(probes++);
        const mesh::Payload sent(text.begin(), text.end());
        FUZZ_CHECK(!client.send(sent));
        mesh::Payload got;
        FUZZ_CHECK(!client.recv_for(got, kDeadline));
        FUZZ_CHECK(got == sent);
    }

    void healthy_clients() {
        round_trip(healthy);
        if (inputs++ % 64 == 0) {
            auto fresh = dial();
            round_trip(fresh);
            fresh.disconnect();
        }
    }
};

Harness& harness() {
    // The error categories are function-local statics too: made before the
    // harness, they are destroyed after it, so the reactor never meets a dead one
    // while the harness shuts it down at exit.
    (void)mesh::error_category();
    (void)asio::error::get_system_category();
    (void)asio::error::get_misc_category();
    (void)asio::error::get_netdb_category();
    (void)asio::error::get_addrinfo_category();
    static Harness h;
    return h;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::signal(SIGPIPE, SIG_IGN);  // OpenSSL's socket BIO writes with write(2)
    harness();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    auto& h = harness();
    h.raw_client(data, size);
    h.healthy_clients();
    h.drain();
    return 0;
}
