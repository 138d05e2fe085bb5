#pragma once

// TLS test peers: a PKI fixture that hands out TlsOptions (files, PEM text,
// insecure), a raw OpenSSL peer (a client, or a one-connection server) that can
// do what the library refuses to do (old protocol versions, arbitrary bytes inside
// TLS, cutting TCP without close_notify), and a TCP proxy that records every byte
// it relays.

#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include "support/raw_peer.hpp"
#include "support/tcp_peers.hpp"
#include "support/test_pki.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mesh_test::tls {

namespace pki = mesh_test::pki;
using namespace std::chrono_literals;

// ---- options ----

// Short deadlines, so that a test that goes wrong fails soon instead of hanging.
inline mesh::StreamOptions test_stream() {
    mesh::StreamOptions stream;
    stream.connect_timeout = 5s;
    stream.handshake_timeout = 5s;
    return stream;
}

// Counts the warnings a transport emits (shared, so a copied TlsOptions still reports here).
struct Warnings {
    std::shared_ptr<std::atomic<int>> count = std::make_shared<std::atomic<int>>(0);
    std::function<void(const std::string&)> sink() const {
        auto c = count;
        return [c](const std::string&) { ++*c; };
    }
    int value() const { return count->load(); }
};

// Secure (mutual) options: both roles present `id` and trust `ca_pem`.
inline mesh::TlsOptions secure_pem(const std::string& ca_pem, const pki::Identity& id) {
    mesh::TlsOptions options;
    options.server = {{}, ca_pem, {}, id.cert_pem, {}, id.key_pem};
    options.client = options.server;
    options.stream = test_stream();
    return options;
}

inline mesh::TlsOptions secure_files(const std::string& ca_file, const std::string& cert_file,
                                     const std::string& key_file) {
    auto options = mesh::TlsOptions::from_files(ca_file, cert_file, key_file);
    options.stream = test_stream();
    return options;
}

// Encrypts, verifies nothing; the warning it logs goes to `warnings` (or nowhere).
inline mesh::TlsOptions insecure_pem(const pki::Identity& id, const Warnings& warnings = {}) {
    mesh::TlsOptions options;
    options.server = {{}, {}, {}, id.cert_pem, {}, id.key_pem};
    options.client = options.server;
    options.insecure = true;
    options.on_warning = warnings.sink();
    options.stream = test_stream();
    return options;
}

// A certificate for a node dialled by IP: the IP SAN only (no DNS name, CN not an address).
inline pki::CertSpec ip_spec(const std::string& common_name) {
    pki::CertSpec spec;
    spec.common_name = common_name;
    spec.dns_names = {};
    spec.ip_addresses = {"127.0.0.1"};
    return spec;
}

// A certificate as Splinter's tests make them: CN and DNS SAN "localhost", no IP SAN.
inline pki::CertSpec localhost_spec() {
    pki::CertSpec spec;
    spec.common_name = "localhost";
    spec.dns_names = {"localhost"};
    spec.ip_addresses = {};
    return spec;
}

// One CA, a server and a client identity, and the same on disk.
struct Fixture {
    pki::Authority ca{"mesh test CA"};
    pki::Identity server_id, client_id;
    pki::TempDir dir;
    std::string ca_file, server_cert_file, server_key_file, client_cert_file, client_key_file;

    explicit Fixture(const pki::CertSpec& server = server_spec(), const pki::CertSpec& client = client_spec())
        : server_id(ca.issue(server)), client_id(ca.issue(client)) {
        ca_file = dir.write("ca.pem", ca.cert_pem());
        server_cert_file = dir.write("server.pem", server_id.cert_pem);
        server_key_file = dir.write("server.key", server_id.key_pem);
        client_cert_file = dir.write("client.pem", client_id.cert_pem);
        client_key_file = dir.write("client.key", client_id.key_pem);
    }

    static pki::CertSpec server_spec() {
        pki::CertSpec spec;
        spec.common_name = "server-1";
        spec.dns_names = {"localhost", "server-1.test"};
        spec.ip_addresses = {"127.0.0.1"};
        return spec;
    }
    static pki::CertSpec client_spec() {
        pki::CertSpec spec;
        spec.common_name = "client-1";
        spec.dns_names = {"client-1.test"};
        spec.ip_addresses = {"127.0.0.2"};
        return spec;
    }

    mesh::TlsOptions server_files() const { return secure_files(ca_file, server_cert_file, server_key_file); }
    mesh::TlsOptions client_files() const { return secure_files(ca_file, client_cert_file, client_key_file); }
    mesh::TlsOptions server_pem() const { return secure_pem(ca.cert_pem(), server_id); }
    mesh::TlsOptions client_pem() const { return secure_pem(ca.cert_pem(), client_id); }
};

// ---- connections made through the transports ----

using mesh_test::BackgroundAccept;

struct TlsPair {
    mesh::TlsConnection client, server;
    std::error_code client_ec, server_ec;
    std::chrono::steady_clock::duration client_took{}, server_took{};
};

// Listens with `server` on a loopback port, dials it with `client` and accepts in
// the background. Checks nothing: failure tests read the two error codes.
inline TlsPair tls_pair(mesh::Tls& server, mesh::Tls& client) {
    auto listener = server.listen("127.0.0.1:0");
    const std::string target = listener.endpoint();
    TlsPair pair;
    const auto start = std::chrono::steady_clock::now();
    {
        BackgroundAccept<mesh::TlsListener> accept(listener);
        pair.client = client.connect(target, pair.client_ec);
        pair.client_took = std::chrono::steady_clock::now() - start;
        accept.join();
        pair.server_took = std::chrono::steady_clock::now() - start;
        pair.server = std::move(accept.connection);
        pair.server_ec = accept.ec;
    }
    return pair;
}

// ---- a raw OpenSSL client ----

namespace detail {

using SslCtxPtr = std::unique_ptr<SSL_CTX, pki::detail::Free<&SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, pki::detail::Free<&SSL_free>>;

// OpenSSL's own socket BIO writes with write(2): a peer that has gone would raise
// SIGPIPE and end the test run. This one sends with MSG_NOSIGNAL.
struct NoSignalBio {
    static BIO* make(int fd) {
        BIO* bio = BIO_new(method());
        if (!bio) return nullptr;
        BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
        BIO_set_init(bio, 1);
        return bio;
    }
    static BIO_METHOD* method() {
        static BIO_METHOD* const m = [] {
            BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "test socket");
            BIO_meth_set_write_ex(made, [](BIO* b, const char* data, std::size_t size, std::size_t* done) {
                BIO_clear_retry_flags(b);
                const ssize_t n = ::send(fd(b), data, size, MSG_NOSIGNAL);
                if (n >= 0) return (*done = static_cast<std::size_t>(n)), 1;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
                return 0;
            });
            BIO_meth_set_read_ex(made, [](BIO* b, char* data, std::size_t size, std::size_t* done) {
                BIO_clear_retry_flags(b);
                const ssize_t n = ::recv(fd(b), data, size, 0);
                if (n > 0) return (*done = static_cast<std::size_t>(n)), 1;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
                return 0;
            });
            BIO_meth_set_ctrl(made, [](BIO*, int command, long, void*) -> long {
                return command == BIO_CTRL_FLUSH ? 1 : 0;
            });
            return made;
        }();
        return m;
    }
    static int fd(BIO* b) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b))); }
};

inline std::string openssl_errors() {
    std::string out;
    while (unsigned long code = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        if (!out.empty()) out += "; ";
        out += text;
    }
    return out;
}

} // namespace detail

struct RawTlsOptions {
    std::string ca_pem;             // verify the peer against it (a server then requires one); empty: verify nothing
    std::string cert_pem, key_pem;  // our certificate, if any
    int min_version = TLS1_VERSION;
    int max_version = 0;  // 0: the highest OpenSSL has
    std::string ciphers;  // for TLS 1.2 and below; empty: OpenSSL's default

    static RawTlsOptions with(const std::string& ca_pem, const pki::Identity& id) {
        RawTlsOptions o;
        o.ca_pem = ca_pem;
        o.cert_pem = id.cert_pem;
        o.key_pem = id.key_pem;
        return o;
    }
};

// A TLS peer written straight against OpenSSL, outside the library: a client, or
// a server for one connection. No read-ahead: it reads record by record, as
// Splinter's peers do. Every call has a deadline; a failure leaves its reason in error().
class RawTlsPeer {
public:
    RawTlsPeer() = default;
    RawTlsPeer(RawTlsPeer&&) = default;
    RawTlsPeer& operator=(RawTlsPeer&&) = default;

    // TCP connect, then the TLS handshake. The TCP connection stays up if the TLS
    // handshake fails (see tcp_connected()).
    bool connect(const std::string& endpoint, const RawTlsOptions& options, std::chrono::milliseconds timeout = 5s) {
        if (!setup(TLS_client_method(), options, SSL_VERIFY_PEER)) return false;
        socket_ = raw_connect(endpoint);
        if (!socket_.valid()) return fail("TCP connect");
        return handshake(true, timeout);
    }

    // The server role: takes the next connection from `listener` and runs the
    // handshake, requiring a client certificate when options.ca_pem is set. On a
    // failed handshake OpenSSL has sent its alert; close_tcp() may follow at once.
    bool accept(RawListener& listener, const RawTlsOptions& options, std::chrono::milliseconds timeout = 5s) {
        if (!setup(TLS_server_method(), options, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT)) return false;
        static const unsigned char id[] = "raw";
        SSL_CTX_set_session_id_context(ctx_.get(), id, sizeof(id) - 1);
        socket_ = listener.accept(timeout);
        if (!socket_.valid()) return fail("TCP accept");
        return handshake(false, timeout);
    }

    bool tcp_connected() const { return socket_.valid(); }
    int fd() const { return socket_.fd(); }
    const std::string& error() const { return error_; }
    std::string version() const { return ssl_ ? SSL_get_version(ssl_.get()) : ""; }

    // One SSL_write: one record when it holds at most 16 KiB.
    bool write(const Bytes& bytes, std::chrono::milliseconds timeout = 5s) {
        if (bytes.empty()) return true;
        std::size_t done = 0;
        return drive([&] { return SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &done); }, timeout, "write");
    }

    // Exactly `size` bytes, or fewer when the stream ends, fails or the time is up.
    Bytes read_exact(std::size_t size, std::chrono::milliseconds timeout = 5s) {
        Bytes out(size);
        std::size_t have = 0;
        const auto deadline = raw_clock::now() + timeout;
        while (have < size) {
            std::size_t n = 0;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - raw_clock::now());
            if (left.count() <= 0) break;
            if (!drive([&] { return SSL_read_ex(ssl_.get(), out.data() + have, size - have, &n); }, left, "read"))
                break;
            have += n;
        }
        out.resize(have);
        return out;
    }

    // Splinter's version handshake, connector role, inside TLS.
    bool version_handshake() { return write(raw_hello(1, 1)) && hex(read_exact(2)) == "00 01"; }

    // Ends TCP with a FIN but no close_notify, as a truncation attack would. The
    // socket stays open for reading, so nothing unread turns the FIN into a reset.
    void cut_tcp() { ::shutdown(socket_.fd(), SHUT_WR); }

    // Closes the socket without close_notify; later writes to it draw a reset. Waits
    // up to `timeout` until the peer has acknowledged everything written: a reset
    // discards whatever is still unsent.
    void close_tcp(std::chrono::milliseconds timeout = 5s) {
        const auto deadline = raw_clock::now() + timeout;
        int unsent = 0;
        while (::ioctl(socket_.fd(), TIOCOUTQ, &unsent) == 0 && unsent > 0 && raw_clock::now() < deadline)
            std::this_thread::sleep_for(1ms);
        socket_.close();
    }

    // Ends the TLS stream properly: close_notify, then the FIN.
    void close_notify() {
        ERR_clear_error();
        SSL_shutdown(ssl_.get());
        ERR_clear_error();
        cut_tcp();
    }

    // True once the server has ended the TLS stream or the TCP connection.
    bool wait_closed(std::chrono::milliseconds timeout = 5s) {
        const auto deadline = raw_clock::now() + timeout;
        std::uint8_t sink[4096];
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - raw_clock::now());
            if (left.count() <= 0) return false;
            std::size_t n = 0;
            if (!drive([&] { return SSL_read_ex(ssl_.get(), sink, sizeof sink, &n); }, left, "read"))
                return error_.rfind("read: timeout", 0) != 0;
        }
    }

private:
    bool setup(const SSL_METHOD* method, const RawTlsOptions& options, int verify) {
        ctx_.reset(SSL_CTX_new(method));
        if (!ctx_) return fail("SSL_CTX_new");
        SSL_CTX_set_min_proto_version(ctx_.get(), options.min_version);
        SSL_CTX_set_max_proto_version(ctx_.get(), options.max_version);
        if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_.get(), options.ciphers.c_str()) != 1)
            return fail("cipher list");
        if (!options.ca_pem.empty()) {
            if (!add_ca(options.ca_pem)) return fail("CA");
            SSL_CTX_set_verify(ctx_.get(), verify, nullptr);
        } else {
            SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
        }
        if (!options.cert_pem.empty() && !use_identity(options.cert_pem, options.key_pem))
            return fail("certificate");
        return true;
    }

    bool handshake(bool client, std::chrono::milliseconds timeout) {
        ::fcntl(socket_.fd(), F_SETFL, ::fcntl(socket_.fd(), F_GETFL) | O_NONBLOCK);
        ssl_.reset(SSL_new(ctx_.get()));
        BIO* bio = ssl_ ? detail::NoSignalBio::make(socket_.fd()) : nullptr;
        if (!bio) return fail("SSL_new");
        SSL_set_bio(ssl_.get(), bio, bio);
        if (client) SSL_set_connect_state(ssl_.get());
        else SSL_set_accept_state(ssl_.get());
        return drive([this] { return SSL_do_handshake(ssl_.get()); }, timeout, "handshake");
    }

    template <class Op>
    bool drive(Op op, std::chrono::milliseconds timeout, const char* what) {
        const auto deadline = raw_clock::now() + timeout;
        for (;;) {
            ERR_clear_error();
            const int result = op();
            if (result > 0) return true;
            const int error = SSL_get_error(ssl_.get(), result);
            short events = 0;
            if (error == SSL_ERROR_WANT_READ) events = POLLIN;
            else if (error == SSL_ERROR_WANT_WRITE) events = POLLOUT;
            else return fail(what, error);
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - raw_clock::now());
            pollfd p{socket_.fd(), events, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count()) + 1) == 0) {
                error_ = std::string(what) + ": timeout";
                return false;
            }
        }
    }

    bool fail(const char* what, int ssl_error = 0) {
        error_ = std::string(what) + ": " + std::to_string(ssl_error) + " " + detail::openssl_errors();
        return false;
    }

    bool add_ca(const std::string& pem) {
        pki::detail::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        pki::detail::CertPtr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
        return cert && X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), cert.get()) == 1;
    }

    bool use_identity(const std::string& cert_pem, const std::string& key_pem) {
        pki::detail::BioPtr cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
        pki::detail::CertPtr cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr);
        pki::detail::BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
        pki::detail::KeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
        return cert && key && SSL_CTX_use_certificate(ctx_.get(), cert.get()) == 1 &&
               SSL_CTX_use_PrivateKey(ctx_.get(), key.get()) == 1;
    }

    // Declared so that the SSL goes before its context and the socket after both.
    RawSocket socket_;
    detail::SslCtxPtr ctx_;
    detail::SslPtr ssl_;
    std::string error_;
};

// ---- a recording proxy ----

// Relays TCP connections from its own loopback port to `upstream` and keeps a copy
// of every byte, per direction: what an eavesdropper on the wire would see.
class RecordingProxy {
public:
    explicit RecordingProxy(const std::string& upstream) : upstream_(upstream) {
        listen_ = RawSocket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_storage address{};
        socklen_t length = 0;
        if (!listen_.valid() || !parse_numeric_endpoint("127.0.0.1:0", address, length) ||
            ::bind(listen_.fd(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
            ::listen(listen_.fd(), 16) != 0)
            return;
        length = sizeof address;
        ::getsockname(listen_.fd(), reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return;
        wake_read_ = RawSocket(fds[0]);
        wake_write_ = RawSocket(fds[1]);
        thread_ = std::thread([this] { run(); });
    }
    RecordingProxy(const RecordingProxy&) = delete;
    RecordingProxy& operator=(const RecordingProxy&) = delete;
    ~RecordingProxy() {
        if (!thread_.joinable()) return;
        const char stop = 0;
        [[maybe_unused]] const ssize_t n = ::write(wake_write_.fd(), &stop, 1);
        thread_.join();
    }

    bool valid() const { return thread_.joinable(); }
    // The proxy's address under `scheme`, e.g. "tcps://127.0.0.1:41234".
    std::string endpoint(const std::string& scheme) const {
        return scheme + "://127.0.0.1:" + std::to_string(port_);
    }
    Bytes client_to_server() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return up_;
    }
    Bytes server_to_client() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return down_;
    }
    int connections() const { return accepted_.load(); }

private:
    struct Link {
        RawSocket down, up;     // the client's side, the upstream side
        bool down_open = true;  // still reading from the client
        bool up_open = true;    // still reading from upstream
    };

    void run() {
        std::vector<std::unique_ptr<Link>> links;
        for (;;) {
            std::vector<pollfd> fds{{wake_read_.fd(), POLLIN, 0}, {listen_.fd(), POLLIN, 0}};
            for (auto& link : links) {
                fds.push_back({link->down_open ? link->down.fd() : -1, POLLIN, 0});
                fds.push_back({link->up_open ? link->up.fd() : -1, POLLIN, 0});
            }
            if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return;
            if (fds[0].revents) return;
            for (std::size_t i = 0; i < links.size(); ++i) {
                Link& link = *links[i];
                if (fds[2 + 2 * i].revents) link.down_open = relay(link.down, link.up, up_);
                if (fds[3 + 2 * i].revents) link.up_open = relay(link.up, link.down, down_);
            }
            // A link whose two directions have ended is closed.
            for (std::size_t i = links.size(); i-- > 0;)
                if (!links[i]->down_open && !links[i]->up_open)
                    links.erase(links.begin() + static_cast<std::ptrdiff_t>(i));
            if (fds[1].revents & POLLIN) {
                auto link = std::make_unique<Link>();
                link->down = RawSocket(::accept4(listen_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
                if (link->down.valid()) link->up = raw_connect(upstream_);
                if (link->down.valid() && link->up.valid()) {
                    links.push_back(std::move(link));
                    ++accepted_;
                }
            }
        }
    }

    // Copies what `from` has to `to` and records it; false once `from` has ended
    // (its end is passed on as a FIN).
    bool relay(RawSocket& from, RawSocket& to, Bytes& record) {
        std::uint8_t buffer[16384];
        const ssize_t n = ::recv(from.fd(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
        if (n <= 0) {
            ::shutdown(to.fd(), SHUT_WR);
            return false;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            record.insert(record.end(), buffer, buffer + n);
        }
        to.write_all(buffer, static_cast<std::size_t>(n), 5s);
        return true;
    }

    std::string upstream_;
    RawSocket listen_;
    std::uint16_t port_ = 0;
    RawSocket wake_read_, wake_write_;
    mutable std::mutex mutex_;
    Bytes up_, down_;
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

} // namespace mesh_test::tls
