#include <doctest/doctest.h>

#include "support/test_pki.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

namespace pki = mesh_test::pki;
using pki::detail::CertPtr;
using pki::detail::Free;
using pki::detail::KeyPtr;
using StorePtr = std::unique_ptr<X509_STORE, Free<&X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<&X509_STORE_CTX_free>>;

pki::detail::BioPtr mem_bio(const std::string& pem) {
    pki::detail::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    REQUIRE(bio);
    return bio;
}

CertPtr load_cert(const std::string& pem) {
    auto bio = mem_bio(pem);
    CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    REQUIRE(cert);
    return cert;
}

KeyPtr load_key(const std::string& pem) {
    auto bio = mem_bio(pem);
    KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    REQUIRE(key);
    return key;
}

// Returns X509_V_OK or the verification error of `leaf_pem` against `ca_pem` (if any).
int verify(const std::string& leaf_pem, const std::optional<std::string>& ca_pem) {
    CertPtr leaf = load_cert(leaf_pem);
    StorePtr store(X509_STORE_new());
    REQUIRE(store);
    if (ca_pem) {
        CertPtr ca = load_cert(*ca_pem);
        REQUIRE(X509_STORE_add_cert(store.get(), ca.get()) == 1);  // takes its own reference
    }
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    REQUIRE(ctx);
    REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) == 1);
    const int ok = X509_verify_cert(ctx.get());
    const int err = X509_STORE_CTX_get_error(ctx.get());
    if (ok != 1) CHECK(err != X509_V_OK);
    return ok == 1 ? X509_V_OK : err;
}

}  // namespace

TEST_CASE("pki: an issued certificate verifies against its authority") {
    pki::Authority ca("mesh test CA");
    const pki::Identity id = ca.issue();
    CHECK(verify(id.cert_pem, ca.cert_pem()) == X509_V_OK);
    CHECK(verify(ca.cert_pem(), ca.cert_pem()) == X509_V_OK);

    CertPtr ca_cert = load_cert(ca.cert_pem());
    CertPtr leaf = load_cert(id.cert_pem);
    CHECK(X509_check_ca(ca_cert.get()) == 1);
    CHECK(X509_check_ca(leaf.get()) == 0);
    CHECK(X509_check_issued(ca_cert.get(), leaf.get()) == X509_V_OK);
    CHECK(X509_check_purpose(leaf.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
    CHECK(X509_check_purpose(leaf.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
}

TEST_CASE("pki: an issued certificate fails against a different authority") {
    pki::Authority ca("mesh test CA");
    pki::Authority other("other test CA");
    CHECK(verify(ca.issue().cert_pem, other.cert_pem()) ==
          X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_CASE("pki: a self-signed leaf is not trusted") {
    const pki::Identity id = pki::self_signed();
    CHECK(verify(id.cert_pem, std::nullopt) == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
    CertPtr cert = load_cert(id.cert_pem);
    CHECK(X509_check_ca(cert.get()) == 0);
    CHECK(X509_check_host(cert.get(), "localhost", 0, 0, nullptr) == 1);
}

TEST_CASE("pki: validity offsets may lie in the past or the future") {
    pki::Authority ca("mesh test CA");

    pki::CertSpec expired;
    expired.valid_from_seconds = -2L * 24 * 3600;
    expired.valid_until_seconds = -3600;
    CHECK(verify(ca.issue(expired).cert_pem, ca.cert_pem()) == X509_V_ERR_CERT_HAS_EXPIRED);

    pki::CertSpec future;
    future.valid_from_seconds = 24L * 3600;
    future.valid_until_seconds = 2L * 24 * 3600;
    CHECK(verify(ca.issue(future).cert_pem, ca.cert_pem()) == X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST_CASE("pki: subjectAltName matches host names and IP addresses") {
    pki::Authority ca("mesh test CA");
    CertPtr cert = load_cert(ca.issue().cert_pem);
    CHECK(X509_check_host(cert.get(), "localhost", 0, 0, nullptr) == 1);
    CHECK(X509_check_host(cert.get(), "example.com", 0, 0, nullptr) == 0);
    CHECK(X509_check_ip_asc(cert.get(), "127.0.0.1", 0) == 1);
    CHECK(X509_check_ip_asc(cert.get(), "::1", 0) == 1);
    CHECK(X509_check_ip_asc(cert.get(), "10.0.0.1", 0) == 0);

    pki::CertSpec custom;
    custom.common_name = "";
    custom.dns_names = {"node-a.mesh.test"};
    custom.ip_addresses = {"10.1.2.3"};
    custom.client = false;
    CertPtr other = load_cert(ca.issue(custom).cert_pem);
    CHECK(X509_check_host(other.get(), "node-a.mesh.test", 0, 0, nullptr) == 1);
    CHECK(X509_check_host(other.get(), "localhost", 0, 0, nullptr) == 0);
    CHECK(X509_check_ip_asc(other.get(), "10.1.2.3", 0) == 1);
    CHECK(X509_check_ip_asc(other.get(), "127.0.0.1", 0) == 0);
    CHECK(X509_check_purpose(other.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
    CHECK(X509_check_purpose(other.get(), X509_PURPOSE_SSL_CLIENT, 0) == 0);
}

TEST_CASE("pki: the private key matches the certificate and is PKCS#8") {
    pki::Authority ca("mesh test CA");
    const pki::Identity a = ca.issue();
    const pki::Identity b = ca.issue();
    CHECK(a.key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);
    CHECK(a.cert_pem.rfind("-----BEGIN CERTIFICATE-----", 0) == 0);

    CertPtr cert_a = load_cert(a.cert_pem);
    CertPtr cert_b = load_cert(b.cert_pem);
    KeyPtr key_a = load_key(a.key_pem);
    CHECK(EVP_PKEY_is_a(key_a.get(), "EC"));
    CHECK(X509_check_private_key(cert_a.get(), key_a.get()) == 1);
    CHECK(X509_check_private_key(cert_b.get(), key_a.get()) == 0);
    ERR_clear_error();  // the mismatch above leaves an error queued
    CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(cert_a.get()),
                           X509_get0_serialNumber(cert_b.get())) != 0);
}

TEST_CASE("pki: OpenSSL failures surface as std::runtime_error") {
    pki::CertSpec bad;
    bad.ip_addresses = {"not-an-ip"};
    CHECK_THROWS_AS(pki::self_signed(bad), std::runtime_error);
    try {
        pki::self_signed(bad);
    } catch (const std::runtime_error& e) {
        MESSAGE(std::string(e.what()));
        CHECK(std::string(e.what()).find("not-an-ip") != std::string::npos);
    }
    CHECK(ERR_peek_error() == 0);
}

TEST_CASE("pki: TempDir writes private files and cleans up") {
    std::string dir;
    std::string file;
    {
        pki::TempDir tmp;
        dir = tmp.path();
        CHECK(dir.rfind("/tmp/", 0) == 0);
        CHECK(std::filesystem::is_directory(dir));
        file = tmp.write("key.pem", "secret\n");
        CHECK(file == dir + "/key.pem");

        std::ifstream in(file, std::ios::binary);
        REQUIRE(in);
        CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "secret\n");

        struct stat st {};
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);

        CHECK_THROWS_AS(tmp.write("../escape", "x"), std::invalid_argument);
    }
    CHECK_FALSE(std::filesystem::exists(file));
    CHECK_FALSE(std::filesystem::exists(dir));
}
