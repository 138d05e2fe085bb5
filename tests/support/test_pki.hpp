#pragma once

// Test-time PKI: CAs, leaf certificates and keys are generated in memory when the
// tests run, so no private key ever lives in the repository.

#include "support/temp_dir.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace mesh_test::pki {

struct Identity {
    std::string cert_pem;  // PEM certificate (or chain)
    std::string key_pem;   // PEM private key, PKCS#8, unencrypted
};

struct CertSpec {
    std::string common_name = "localhost";
    std::vector<std::string> dns_names = {"localhost"};            // subjectAltName DNS
    std::vector<std::string> ip_addresses = {"127.0.0.1", "::1"};  // subjectAltName IP
    long valid_from_seconds = -3600;               // notBefore relative to now
    long valid_until_seconds = 365L * 24 * 3600;   // notAfter relative to now
    bool server = true, client = true;             // extendedKeyUsage
};

namespace detail {

template <auto Fn>
struct Free {
    template <class T>
    void operator()(T* p) const noexcept { Fn(p); }
};

using KeyPtr = std::unique_ptr<EVP_PKEY, Free<&EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Free<&X509_free>>;
using BioPtr = std::unique_ptr<BIO, Free<&BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<&BN_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Free<&X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Free<&X509_EXTENSION_free>>;
using GenNamePtr = std::unique_ptr<GENERAL_NAME, Free<&GENERAL_NAME_free>>;
using GenNamesPtr = std::unique_ptr<GENERAL_NAMES, Free<&GENERAL_NAMES_free>>;

// Drains the whole error queue so one failure can't leak into the next message.
[[noreturn]] inline void fail(const char* what) {
    std::string message = std::string("test_pki: ") + what + " failed";
    const char* data = nullptr;
    int flags = 0;
    while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        message += std::string(": ") + buf;
        if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0')
            message += std::string(" (") + data + ")";
    }
    throw std::runtime_error(message);
}

inline void check(int ok, const char* what) {
    if (ok <= 0) fail(what);
}

template <class T>
T* check(T* p, const char* what) {
    if (p == nullptr) fail(what);
    return p;
}

inline KeyPtr generate_key() {
    return KeyPtr(check(EVP_EC_gen("P-256"), "EVP_EC_gen(P-256)"));
}

inline std::string drain(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    if (len < 0 || data == nullptr) fail("BIO_get_mem_data");
    return std::string(data, static_cast<std::size_t>(len));
}

inline std::string to_pem(X509* cert) {
    BioPtr bio(check(BIO_new(BIO_s_mem()), "BIO_new"));
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    return drain(bio.get());
}

inline std::string to_pem(EVP_PKEY* key) {
    BioPtr bio(check(BIO_new(BIO_s_mem()), "BIO_new"));
    check(PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PKCS8PrivateKey");
    return drain(bio.get());
}

inline NamePtr make_name(const std::string& common_name) {
    NamePtr name(check(X509_NAME_new(), "X509_NAME_new"));
    // An empty CN means no CN at all (SAN-only leaf), not an empty attribute.
    if (!common_name.empty()) {
        check(X509_NAME_add_entry_by_txt(
                  name.get(), "CN", MBSTRING_UTF8,
                  reinterpret_cast<const unsigned char*>(common_name.data()),
                  static_cast<int>(common_name.size()), -1, 0),
              "X509_NAME_add_entry_by_txt(CN)");
    }
    return name;
}

// A positive 159-bit serial with the top bit set: 20 DER bytes, never zero (RFC 5280 4.1.2.2).
inline void set_random_serial(X509* cert) {
    BnPtr bn(check(BN_new(), "BN_new"));
    check(BN_rand(bn.get(), 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), "BN_rand");
    check(BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)), "BN_to_ASN1_INTEGER");
}

// Fixed, trusted values only: the nconf parser would misread commas in user input.
inline void add_ext(X509V3_CTX* ctx, X509* cert, int nid, const char* value) {
    ExtPtr ext(check(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value), OBJ_nid2sn(nid)));
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

// Built structurally rather than via "DNS:a,IP:b" so names are never reparsed.
inline void add_subject_alt_names(X509* cert, const CertSpec& spec) {
    if (spec.dns_names.empty() && spec.ip_addresses.empty()) return;
    GenNamesPtr names(check(GENERAL_NAMES_new(), "GENERAL_NAMES_new"));
    auto push = [&](int type, const std::string& value) {
        GenNamePtr name(check(a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, value.c_str(), 0),
                              "a2i_GENERAL_NAME"));
        check(sk_GENERAL_NAME_push(names.get(), name.get()), "sk_GENERAL_NAME_push");
        name.release();  // the stack owns it now
    };
    for (const auto& dns : spec.dns_names) push(GEN_DNS, dns);
    for (const auto& ip : spec.ip_addresses) push(GEN_IPADD, ip);
    check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
          "X509_add1_ext_i2d(subjectAltName)");
}

// Everything common to CA and leaf; `issuer`/`issuer_key` null means self-signed.
inline CertPtr build(const std::string& common_name, long from, long until, EVP_PKEY* key,
                     X509* issuer, EVP_PKEY* issuer_key, bool is_ca, const CertSpec* leaf) {
    CertPtr cert(check(X509_new(), "X509_new"));
    X509* x = cert.get();
    check(X509_set_version(x, X509_VERSION_3), "X509_set_version");
    set_random_serial(x);
    check(X509_gmtime_adj(X509_getm_notBefore(x), from), "X509_gmtime_adj(notBefore)");
    check(X509_gmtime_adj(X509_getm_notAfter(x), until), "X509_gmtime_adj(notAfter)");

    NamePtr subject = make_name(common_name);
    check(X509_set_subject_name(x, subject.get()), "X509_set_subject_name");
    check(X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : subject.get()),
          "X509_set_issuer_name");
    check(X509_set_pubkey(x, key), "X509_set_pubkey");

    X509V3_CTX ctx{};
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
    if (is_ca) {
        add_ext(&ctx, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(&ctx, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(&ctx, x, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(&ctx, x, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        std::string eku;
        if (leaf->server) eku = "serverAuth";
        if (leaf->client) eku += eku.empty() ? "clientAuth" : ",clientAuth";
        if (!eku.empty()) add_ext(&ctx, x, NID_ext_key_usage, eku.c_str());
        add_subject_alt_names(x, *leaf);
    }
    // SKI first: for a self-signed cert the AKI is derived from the cert's own SKI.
    add_ext(&ctx, x, NID_subject_key_identifier, "hash");
    add_ext(&ctx, x, NID_authority_key_identifier, "keyid:always");

    check(X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()), "X509_sign");
    return cert;
}

}  // namespace detail

// A CA valid from an hour ago for ten years: long enough that its own validity
// never interferes with tests about leaf validity.
class Authority {
public:
    explicit Authority(const std::string& common_name)
        : key_(detail::generate_key()),
          cert_(detail::build(common_name, -3600, 10L * 365 * 24 * 3600, key_.get(), nullptr,
                              nullptr, true, nullptr)),
          cert_pem_(detail::to_pem(cert_.get())) {}

    const std::string& cert_pem() const { return cert_pem_; }

    // Leaf only in cert_pem; append cert_pem() of this Authority for a full chain.
    Identity issue(const CertSpec& spec = {}) const {
        detail::KeyPtr key = detail::generate_key();
        detail::CertPtr cert =
            detail::build(spec.common_name, spec.valid_from_seconds, spec.valid_until_seconds,
                          key.get(), cert_.get(), key_.get(), false, &spec);
        return Identity{detail::to_pem(cert.get()), detail::to_pem(key.get())};
    }

private:
    detail::KeyPtr key_;
    detail::CertPtr cert_;
    std::string cert_pem_;
};

inline Identity self_signed(const CertSpec& spec = {}) {
    detail::KeyPtr key = detail::generate_key();
    detail::CertPtr cert =
        detail::build(spec.common_name, spec.valid_from_seconds, spec.valid_until_seconds,
                      key.get(), nullptr, nullptr, false, &spec);
    return Identity{detail::to_pem(cert.get()), detail::to_pem(key.get())};
}

using mesh_test::TempDir;

}  // namespace mesh_test::pki
