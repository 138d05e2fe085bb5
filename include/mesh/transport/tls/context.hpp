#pragma once

#include "mesh/version.hpp"
#include "mesh/error.hpp"
#include "mesh/transport/stream/listener.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

MESH_NAMESPACE_BEGIN

/// A TLS protocol version (TlsOptions::min_version, max_version).
enum class TlsVersion {
    tls1_2,  ///< TLS 1.2
    tls1_3   ///< TLS 1.3
};

/// Each item comes from a PEM file or from PEM text; a role may leave any empty.
struct TlsCredentials {
    /// CAs trusted to sign the peer's certificate (a bundle).
    ///@{
    std::string ca_file, ca_pem;
    ///@}
    /// Our certificate chain, leaf first.
    ///@{
    std::string cert_file, cert_pem;
    ///@}
    /// Our private key (unencrypted PEM).
    ///@{
    std::string key_file, key_pem;
    ///@}
};

/// TLS for tcps://. Peers are verified in both directions by default (mutual TLS):
/// a CA is required unless `insecure` is chosen explicitly, which logs a warning.
struct TlsOptions {
    TlsCredentials server;  ///< used when listening; a listener needs a certificate
    TlsCredentials client;  ///< used when connecting; a role without a CA uses the other's
    TlsVersion min_version = TlsVersion::tls1_2;  ///< the oldest version allowed; TLS 1.3 is chosen whenever both sides allow it
    TlsVersion max_version = TlsVersion::tls1_3;  ///< the newest version allowed
    bool insecure = false;          ///< encrypt but verify nothing (Splinter's `--tls-insecure`)
    bool localhost_for_ip = false;  ///< as Splinter: an IP endpoint's certificate must name "localhost"
    std::string server_name;        ///< the name the server's certificate must carry; default: the endpoint's host
    std::function<void(const std::string&)> on_warning;  ///< default: one line on stderr
    StreamOptions stream;  ///< the stream settings: message size limit, timeouts, handshake limit

    /// Splinter's layout: one CA, one certificate and key, for both roles.
    static TlsOptions from_files(const std::string& ca_file, const std::string& cert_file,
                                 const std::string& key_file) {
        TlsOptions options;
        options.server = {ca_file, {}, cert_file, {}, key_file, {}};
        options.client = options.server;
        return options;
    }
};

namespace detail {

struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// The OpenSSL contexts of one Tls transport, shared by its listeners and connections.
class TlsContext {
public:
    // Builds both roles' contexts; on failure `why` says what is wrong.
    static std::shared_ptr<const TlsContext> make(const TlsOptions& options, std::error_code& ec, std::string& why) {
        auto context = std::shared_ptr<TlsContext>(new TlsContext(options));
        ec = context->build(options, why);
        if (ec) return nullptr;
        return context;
    }

    SSL_CTX* server() const noexcept { return server_.get(); }
    SSL_CTX* client() const noexcept { return client_.get(); }
    bool verifies() const noexcept { return !insecure_; }
    bool localhost_for_ip() const noexcept { return localhost_for_ip_; }
    const std::string& server_name() const noexcept { return server_name_; }

private:
    explicit TlsContext(const TlsOptions& options)
        : insecure_(options.insecure), localhost_for_ip_(options.localhost_for_ip),
          server_name_(options.server_name) {}

    [[nodiscard]] std::error_code build(const TlsOptions& options, std::string& why) {
        const bool has_ca = has_any(options.server.ca_file, options.server.ca_pem) ||
                            has_any(options.client.ca_file, options.client.ca_pem);
        const bool server_cert = has_any(options.server.cert_file, options.server.cert_pem);
        const bool client_cert = has_any(options.client.cert_file, options.client.cert_pem);
        if (options.min_version > options.max_version) return fail(why, "min_version is above max_version");
        if (!options.insecure && !has_ca) return fail(why, "no CA given: set a CA, or choose insecure explicitly");
        if (!server_cert && !client_cert && !options.insecure)
            return fail(why, "no certificate given for either role");
        if (options.insecure) {
            const std::string warning =
                "mesh: TLS peer verification is disabled (TlsOptions::insecure): traffic is encrypted, "
                "peers are not authenticated";
            if (options.on_warning) options.on_warning(warning);
            else std::cerr << warning << '\n';
        }
        if (server_cert) {
            server_.reset(SSL_CTX_new(TLS_server_method()));
            if (auto ec = setup(server_.get(), options, options.server, options.client, why)) return ec;
            // Resumed sessions of verified clients need an id context.
            static const unsigned char id[] = "mesh";
            SSL_CTX_set_session_id_context(server_.get(), id, sizeof(id) - 1);
            SSL_CTX_set_verify(server_.get(),
                               insecure_ ? SSL_VERIFY_NONE : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        }
        client_.reset(SSL_CTX_new(TLS_client_method()));
        if (auto ec = setup(client_.get(), options, options.client, options.server, why)) return ec;
        SSL_CTX_set_verify(client_.get(), insecure_ ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
        return {};
    }

    // `own` supplies the identity; the CA falls back to `other`'s.
    static std::error_code setup(SSL_CTX* ctx, const TlsOptions& options, const TlsCredentials& own,
                                 const TlsCredentials& other, std::string& why) {
        if (!ctx) return fail(why, "cannot create an OpenSSL context");
        const auto version = [](TlsVersion v) { return v == TlsVersion::tls1_2 ? TLS1_2_VERSION : TLS1_3_VERSION; };
        SSL_CTX_set_min_proto_version(ctx, version(options.min_version));
        SSL_CTX_set_max_proto_version(ctx, version(options.max_version));
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
        // Moving writes let a batch resume from another buffer; idle sessions drop their
        // buffers. No partial writes: a gathered batch is encrypted in 64 KiB chunks, not per record.
        SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_read_ahead(ctx, 1);  // one recv takes many small records
        // TLS 1.2: forward-secret AEAD suites only, the ones Splinter's servers accept.
        if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL") != 1)
            return fail(why, "cipher list rejected");
        const TlsCredentials& ca_source = has_any(own.ca_file, own.ca_pem) ? own : other;
        if (!options.insecure)
            if (auto ec = load_ca(ctx, ca_source, why)) return ec;
        if (has_any(own.cert_file, own.cert_pem) || has_any(own.key_file, own.key_pem))
            if (auto ec = load_identity(ctx, own, why)) return ec;
        return {};
    }

    static std::error_code load_ca(SSL_CTX* ctx, const TlsCredentials& c, std::string& why) {
        if (!c.ca_file.empty() && SSL_CTX_load_verify_locations(ctx, c.ca_file.c_str(), nullptr) != 1)
            return fail(why, "cannot load CA file " + c.ca_file);
        if (c.ca_pem.empty()) return {};
        int added = 0;
        for_each_pem_cert(c.ca_pem, [&](X509* cert) {
            if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cert) == 1) ++added;
        });
        if (added == 0) return fail(why, "no CA certificate in ca_pem");
        return {};
    }

    static std::error_code load_identity(SSL_CTX* ctx, const TlsCredentials& c, std::string& why) {
        if (!has_any(c.cert_file, c.cert_pem) || !has_any(c.key_file, c.key_pem))
            return fail(why, "a certificate needs its key and a key its certificate");
        if (!c.cert_file.empty()) {
            if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1)
                return fail(why, "cannot load certificate chain " + c.cert_file);
        } else {
            int count = 0;
            bool ok = true;
            for_each_pem_cert(c.cert_pem, [&](X509* cert) {
                ok = ok && (count++ == 0 ? SSL_CTX_use_certificate(ctx, cert) : SSL_CTX_add1_chain_cert(ctx, cert)) == 1;
            });
            if (!ok || count == 0) return fail(why, "cannot use cert_pem");
        }
        if (!c.key_file.empty()) {
            if (SSL_CTX_use_PrivateKey_file(ctx, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
                return fail(why, "cannot load private key " + c.key_file);
        } else {
            BIO* bio = BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size()));
            EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
            const bool used = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
            EVP_PKEY_free(key);
            BIO_free(bio);
            if (!used) return fail(why, "cannot use key_pem");
        }
        if (SSL_CTX_check_private_key(ctx) != 1) return fail(why, "the private key does not match the certificate");
        return {};
    }

    template <class Use>
    static void for_each_pem_cert(const std::string& pem, Use&& use) {
        BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        if (!bio) return;
        while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
            use(cert);
            X509_free(cert);
        }
        BIO_free(bio);
        ERR_clear_error();  // the loop ends on a "no start line" error
    }

    static bool has_any(const std::string& file, const std::string& pem) { return !file.empty() || !pem.empty(); }

    static std::error_code fail(std::string& why, std::string what) {
        const unsigned long err = ERR_peek_last_error();
        if (err != 0) {
            char text[256];
            ERR_error_string_n(err, text, sizeof(text));
            what += ": ";
            what += text;
        }
        ERR_clear_error();
        why = std::move(what);
        return errc::tls_config;
    }

    SslCtxPtr server_, client_;
    bool insecure_;
    bool localhost_for_ip_;
    std::string server_name_;
};

} // namespace detail
MESH_NAMESPACE_END
