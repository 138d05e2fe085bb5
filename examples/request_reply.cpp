// Request and reply with a timeout. A server answers requests ("square 7" -> "49")
// but, to show what a client must be ready for, ignores every third one. The client
// waits a bounded time for each answer and reports the ones that never came.
#include <mesh/mesh.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

int main() {
    using namespace std::chrono_literals;
    mesh::Tcp tcp;
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();

    // The server: its own mesh and thread, answering until its mesh shuts down.
    mesh::Mesh<mesh::Tcp> server;
    server.accept_from(std::move(listener));
    std::thread serving([&server] {
        mesh::Envelope request;
        for (int n = 1; !server.recv(request); ++n) {  // recv fails with shut_down at the end
            if (n % 3 == 0) continue;                    // "lost": no answer
            const long x = std::stol(std::string(request.payload.view().substr(7)));
            (void)server.send(request.id, std::to_string(x * x));
        }
    });

    mesh::Mesh<mesh::Tcp> client;
    client.add(tcp.connect(endpoint), "server");
    int answered = 0, timed_out = 0;
    for (int x = 1; x <= 6; ++x) {
        if (!client.send("server", "square " + std::to_string(x)).ok()) return 1;
        mesh::Envelope reply;
        const std::error_code ec = client.recv_timeout(reply, 500ms);
        if (ec == mesh::errc::timeout) {
            std::cout << "square " << x << ": no answer within 500 ms" << std::endl;
            ++timed_out;
            continue;
        }
        if (ec) return 1;
        std::cout << "square " << x << " = " << reply.payload.view() << std::endl;
        ++answered;
    }
    // Each request here waits for its own answer, so a late one cannot be mistaken for
    // the next; a client with several requests in flight would number them instead.

    server.shutdown();  // wakes the server's recv with shut_down
    serving.join();
    std::cout << answered << " answered, " << timed_out << " timed out" << std::endl;
    return 0;
}
