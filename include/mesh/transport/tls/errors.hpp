#pragma once

#include "mesh/version.hpp"
#include "mesh/error.hpp"

#include <asio/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <system_error>

MESH_NAMESPACE_BEGIN
namespace detail {

// A failed certificate check, as the side that checked it saw it.
inline std::error_code verify_error(long result) {
    switch (result) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return errc::certificate_self_signed;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID: return errc::certificate_expired;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return errc::certificate_name_mismatch;
    default: return errc::certificate_untrusted;
    }
}

// The error behind a failed OpenSSL call on `ssl`, read from OpenSSL's queue.
// The side that was rejected learns why from the peer's alert.
inline std::error_code tls_error(SSL* ssl) {
    const unsigned long err = ERR_peek_error();
    ERR_clear_error();
    switch (ERR_GET_REASON(err)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED: return verify_error(SSL_get_verify_result(ssl));
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: return errc::certificate_missing;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: return errc::certificate_untrusted;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED: return errc::certificate_expired;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW: return errc::tls_version_refused;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING: return asio::error::eof;  // the frame decoder judges the cut
    default: return errc::tls_failure;
    }
}

} // namespace detail
MESH_NAMESPACE_END
