// An echo server and client written as C++20 coroutines (asio::use_awaitable), both
// meshes on one io_context that this program runs on its main thread: no thread of
// the library's. The client keeps its connection with a dialer, waits for the
// "dialed" event, then sends and awaits each echo in turn.
//
//   coro_echo [COUNT]      default 5 messages
#include <mesh/mesh.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <system_error>

namespace {

using Mesh = mesh::Mesh<mesh::Tcp>;

// Every message goes back on the connection it came on, until the mesh shuts down.
asio::awaitable<void> serve(Mesh server) {
    for (;;) {
        mesh::Envelope envelope;
        try {
            envelope = co_await server.async_recv(asio::use_awaitable);
        } catch (const std::system_error&) {
            break;  // shut_down: an error completes the await by throwing
        }
        std::cout << "server: echoing \"" << envelope.payload.view() << "\"\n";
        // Waits for room instead of failing when the client's queue is full.
        co_await server.async_send(std::move(envelope), asio::use_awaitable);
    }
}

asio::awaitable<void> run_client(Mesh client, Mesh server, int count) {
    mesh::ConnectionEvent event;
    do event = co_await client.async_next_event(asio::use_awaitable);
    while (event.kind != mesh::ConnectionEvent::Kind::dialed);
    std::cout << "client: connected to " << event.id << "\n";
    int echoed = 0;
    for (int i = 1; i <= count; ++i) {
        const std::string text = "message " + std::to_string(i);
        co_await client.async_send("server", mesh::Payload(text), asio::use_awaitable);
        mesh::Envelope echo = co_await client.async_recv(asio::use_awaitable);
        if (echo.payload.view() == text) ++echoed;
    }
    std::cout << "client: " << echoed << " of " << count << " echoed\n";
    // On the io_context's own thread a shutdown only begins; run() returns once both are done.
    client.shutdown();
    server.shutdown();
}

} // namespace

int main(int argc, char** argv) {
    const int count = argc > 1 ? std::atoi(argv[1]) : 5;
    asio::io_context io;
    mesh::Tcp tcp;

    Mesh server(io);
    auto listener = tcp.listen("127.0.0.1:0");
    const std::string endpoint = listener.endpoint();
    server.accept_from(std::move(listener));

    Mesh client(io);
    mesh::Dialer dialer = client.dial(tcp, endpoint, "server");

    asio::co_spawn(io, serve(server), asio::detached);
    asio::co_spawn(io, run_client(client, server, count), [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
    });
    io.run();  // both meshes do their work here, and it returns once both are shut down
    return 0;
}
