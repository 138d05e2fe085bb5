// Two nodes over TLS with mutual verification: each proves who it is with a certificate
// that a shared CA signed, and each checks the other's.
//
//   tls_pair CA_FILE CERT_FILE KEY_FILE
//
// The certificate must name "localhost" (as a DNS name): both nodes present it, and
// the client checks the server's for that name. To make a CA and such a certificate:
//
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//       -subj /CN=demo-ca -keyout ca.key -out ca.pem
//   openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost
//       -keyout node.key -out node.csr
//   printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
//   openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30
//       -extfile ext.cnf -out node.pem
//
// (each command on one line; tests/examples/tls_pair.sh runs exactly these)
#include <mesh/mesh.hpp>

#include <chrono>
#include <iostream>
#include <string>

#if !MESH_HAS_TLS
int main() {
    std::cerr << "built without TLS: link mesh::tls, or define MESH_ENABLE_TLS=1 and link OpenSSL\n";
    return 1;
}
#else
int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: tls_pair CA_FILE CERT_FILE KEY_FILE\n";
        return 2;
    }
    try {
        // One CA, certificate and key for both roles, as Splinter takes them. The
        // constructor checks the files and throws, saying what is wrong with them.
        auto options = mesh::TlsOptions::from_files(argv[1], argv[2], argv[3]);
        // Dialled by IP, the server's certificate is checked for this name instead
        // of the address (without it, the certificate would need the IP itself).
        options.server_name = "localhost";
        mesh::Tls tls(options);

        mesh::Mesh<mesh::Tls> server;
        auto listener = tls.listen("tcps://127.0.0.1:0");
        const std::string endpoint = listener.endpoint();
        server.accept_from(std::move(listener));

        mesh::Mesh<mesh::Tls> client;
        client.add(tls.connect(endpoint), "server");

        if (!client.send("server", "hello over TLS").ok()) return 1;
        mesh::Envelope envelope;
        if (server.recv_timeout(envelope, std::chrono::seconds(5))) return 1;
        std::cout << "server received \"" << envelope.payload.view() << "\"" << std::endl;

        // What the client verified about the server, read from the connection itself.
        auto connection = client.remove("server");
        const auto& peer = connection.session().peer();
        std::cout << "client verified the server: " << (peer.verified ? "yes" : "no")
                  << ", certificate for \"" << peer.common_name << "\"" << std::endl;
    } catch (const std::system_error& e) {
        std::cerr << "tls_pair: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
#endif
