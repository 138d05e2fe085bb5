#pragma once

#include "mesh/version.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/plain_session.hpp"
#include "mesh/transport/tls/bio.hpp"
#include "mesh/transport/tls/context.hpp"
#include "mesh/transport/tls/errors.hpp"

#include <asio/buffer.hpp>
#include <asio/ip/address.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <poll.h>

MESH_NAMESPACE_BEGIN

/// Who is at the other end of a TLS connection, read once the handshake is done
/// (TlsConnection::session().peer()). The certificate's fields stay empty when the
/// peer sent none.
struct TlsPeer {
    bool verified = false;      ///< the certificate chained to our CA (and matched the name, when we dialled)
    std::string subject;        ///< RFC 2253, e.g. "CN=node-1,O=example"
    std::string common_name;    ///< the subject's CN
    std::vector<std::string> dns_names;     ///< subjectAltName DNS entries
    std::vector<std::string> ip_addresses;  ///< subjectAltName IP entries, as text
    std::string version;                    ///< "TLSv1.3", "TLSv1.2"
    std::string cipher;                     ///< the cipher suite, as OpenSSL names it
};

namespace detail {

// The byte channel of a tcps:// connection: OpenSSL over the non-blocking socket.
class TlsSession {
public:
    // Splinter reads a frame, then waits for the socket: a record that held the
    // start of the next frame would sit unread in OpenSSL. So records never cross frames.
    static constexpr bool frame_per_write = true;

    TlsSession() = default;

    static TlsSession server(const TlsContext& context, std::error_code& ec) {
        TlsSession session(SSL_new(context.server()));
        if (!session.ssl_) ec = errc::tls_failure;
        else SSL_set_accept_state(session.ssl_.get());
        return session;
    }

    // `host` is the endpoint's host; the server's certificate must be for it (see TlsOptions).
    static TlsSession client(const TlsContext& context, const std::string& host, std::error_code& ec) {
        TlsSession session(SSL_new(context.client()));
        SSL* ssl = session.ssl_.get();
        if (!ssl) {
            ec = errc::tls_failure;
            return session;
        }
        SSL_set_connect_state(ssl);
        std::string name = context.server_name().empty() ? host : context.server_name();
        std::error_code not_ip;
        asio::ip::make_address(name, not_ip);
        if (!not_ip && context.localhost_for_ip()) {
            name = "localhost";
            not_ip = make_error_code(errc::invalid_endpoint);
        }
        bool ok = true;
        if (not_ip) {
            ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;  // SNI carries names, never addresses
            if (context.verifies()) {
                SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = ok && SSL_set1_host(ssl, name.c_str()) == 1;
            }
        } else if (context.verifies()) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
        }
        if (!ok) ec = errc::tls_config;
        return session;
    }

    [[nodiscard]] std::error_code attach(int fd) {
        BIO* bio = SocketBio::make(fd, bio_);
        if (!bio) return errc::tls_failure;
        SSL_set_bio(ssl_.get(), bio, bio);
        return {};
    }

    template <class Socket>
    [[nodiscard]] std::error_code handshake(Socket&) {
        ERR_clear_error();
        const int result = SSL_do_handshake(ssl_.get());
        if (result != 1) return failure(result, read_want_);
        read_peer();
        return {};
    }

    template <class Socket>
    std::size_t read_some(Socket&, asio::mutable_buffer buffer, std::error_code& ec) {
        std::size_t n = 0;
        ERR_clear_error();
        if (buffer.size() == 0 || SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n) == 1) return n;
        ec = failure(0, read_want_);
        return 0;
    }

    // Encrypts whole buffers (the caller's are frame-aligned, so records never
    // cross frames) into one batch of records, then sends the batch at once.
    // What the socket does not take now is held for flush().
    template <class Socket, class Buffers>
    std::size_t write_some(Socket&, const Buffers& buffers, std::error_code& ec) {
        if ((ec = flush())) return 0;
        std::size_t consumed = 0;
        bio_->gather = true;
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            const asio::const_buffer buffer(*it);
            if (bio_->held() >= batch_bytes) break;
            if (buffer.size() == 0) continue;
            std::size_t n = 0;
            ERR_clear_error();
            if (SSL_write_ex(ssl_.get(), buffer.data(), std::min(buffer.size(), batch_bytes), &n) != 1) {
                ec = failure(0, write_want_);
                break;
            }
            consumed += n;
            if (n < buffer.size()) break;
        }
        bio_->gather = false;
        if (!ec && consumed != 0) {
            const auto sent = bio_->flush();
            if (!would_block(sent)) ec = sent;  // else held: the caller's next write or flush sends it
        }
        if (ec && !would_block(ec) && ec.category() == asio::error::get_system_category()) ec = alert_behind(ec);
        return consumed;
    }

    [[nodiscard]] std::error_code flush() {
        if (!bio_) return {};
        auto ec = bio_->flush();
        if (would_block(ec)) write_want_ = POLLOUT;
        else if (ec) ec = alert_behind(ec);
        return ec;
    }

    // Decrypted or raw bytes OpenSSL read ahead and has not handed out yet.
    bool has_pending() const noexcept { return ssl_ && SSL_has_pending(ssl_.get()) == 1; }

    // Reads may need the socket writable and writes readable (TLS 1.3 key updates).
    short wants(short events) const noexcept { return (events & POLLOUT) ? write_want_ : read_want_; }

    // Sends close_notify if the socket takes it now; a close never waits for the peer.
    template <class Socket>
    void close(Socket&) noexcept {
        if (!ssl_) return;
        if (SSL_is_init_finished(ssl_.get())) {
            ERR_clear_error();
            SSL_shutdown(ssl_.get());
            ERR_clear_error();
        }
        // The descriptor number is about to be closed and reused: never touch it again.
        if (bio_) bio_->fd = -1;
    }

    const TlsPeer& peer() const noexcept { return peer_; }

private:
    struct SslFree {
        void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
    };

    explicit TlsSession(SSL* ssl) : ssl_(ssl) {}

    [[nodiscard]] std::error_code failure(int result, short& want) {
        const int saved_errno = errno;
        const int error = SSL_get_error(ssl_.get(), result);
        switch (error) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            want = error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            return asio::error::would_block;
        case SSL_ERROR_ZERO_RETURN: return asio::error::eof;  // close_notify
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0) {
                // The socket failed, or ended without close_notify (the decoder judges that).
                // Asio's category, as for plain sockets, so that asio::error values compare equal.
                if (saved_errno == 0) return asio::error::eof;
                return {saved_errno, asio::error::get_system_category()};
            }
            return tls_error(ssl_.get());
        default: return tls_error(ssl_.get());
        }
    }

    // A peer that refuses us sends an alert and closes, often with our last records
    // unread, so its kernel answers with a reset. A write that meets the reset fails
    // while the alert, already received, waits unread (TLS 1.3: a client learns of
    // its rejected certificate only after its side of the handshake is done). Peek
    // for it, consuming no data, so the error says why.
    [[nodiscard]] std::error_code alert_behind(const std::error_code& ec) {
        unsigned char byte = 0;
        std::size_t n = 0;
        ERR_clear_error();
        const int result = SSL_peek_ex(ssl_.get(), &byte, 1, &n);
        if (result != 1 && SSL_get_error(ssl_.get(), result) == SSL_ERROR_SSL) {
            const auto why = tls_error(ssl_.get());
            if (why.category() == error_category()) return why;
        }
        ERR_clear_error();
        return ec;
    }

    void read_peer() {
        SSL* ssl = ssl_.get();
        peer_.version = SSL_get_version(ssl);
        peer_.cipher = SSL_get_cipher_name(ssl);
        X509* cert = SSL_get0_peer_certificate(ssl);
        if (!cert) return;
        peer_.verified = SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && SSL_get_verify_result(ssl) == X509_V_OK;
        const X509_NAME* subject = X509_get_subject_name(cert);
        if (BIO* bio = BIO_new(BIO_s_mem())) {
            X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253);
            char* text = nullptr;
            const long size = BIO_get_mem_data(bio, &text);
            peer_.subject.assign(text, static_cast<std::size_t>(size));
            BIO_free(bio);
        }
        std::array<char, 256> cn{};
        if (X509_NAME_get_text_by_NID(const_cast<X509_NAME*>(subject), NID_commonName, cn.data(),
                                      static_cast<int>(cn.size())) > 0)
            peer_.common_name = cn.data();
        auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
            int type = 0;
            const auto* value = static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
            const auto* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(value));
            const int length = ASN1_STRING_length(value);
            if (type == GEN_DNS) {
                peer_.dns_names.emplace_back(data, static_cast<std::size_t>(length));
            } else if (type == GEN_IPADD && (length == 4 || length == 16)) {
                std::array<char, INET6_ADDRSTRLEN> text{};
                if (inet_ntop(length == 4 ? AF_INET : AF_INET6, data, text.data(), text.size()))
                    peer_.ip_addresses.emplace_back(text.data());
            }
        }
        GENERAL_NAMES_free(names);
        ERR_clear_error();
    }

    static constexpr std::size_t batch_bytes = 64 * 1024;

    std::unique_ptr<SSL, SslFree> ssl_;
    SocketBio::State* bio_ = nullptr;  // owned by ssl_'s BIO
    short read_want_ = POLLIN, write_want_ = POLLOUT;
    TlsPeer peer_;
};

// Makes the sessions of a TLS listener's accepted connections.
struct TlsSecurity {
    using session_type = TlsSession;
    std::shared_ptr<const TlsContext> context;

    TlsSession server_session(int fd, std::error_code& ec) const {
        if (!context || !context->server()) {
            ec = errc::tls_config;
            return TlsSession();
        }
        auto session = TlsSession::server(*context, ec);
        if (!ec) ec = session.attach(fd);
        return session;
    }
};

} // namespace detail
MESH_NAMESPACE_END
