#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using mesh::Payload;
using mesh::detail::BufferPool;

namespace {
Payload heap_payload(std::size_t size) { return Payload(size, 0xab); }
} // namespace

TEST_SUITE("buffer pool") {

TEST_CASE("the meshes of a process share one pool per size limit, freed with the last of them") {
    auto first = BufferPool::shared(3000);
    auto second = BufferPool::shared(3000);
    auto other = BufferPool::shared(5000);
    CHECK(first == second);
    CHECK(first != other);
    CHECK(first->max_bytes() == 3000);
    CHECK(other->max_bytes() == 5000);
    std::weak_ptr<BufferPool> watched = first;
    first.reset();
    CHECK_FALSE(watched.expired());  // `second` still holds it
    second.reset();
    CHECK(watched.expired());
    CHECK(BufferPool::shared(3000) != nullptr);  // a new one when asked again
}

TEST_CASE("a buffer spent by one in-process mesh is taken again by the other mesh's next send") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> a, b;
    auto listener = transport.listen("shared-pool");
    a.add(transport.connect(listener.endpoint()), "b");
    b.add(listener.accept(), "a");
    const std::string bytes(1000, 's');
    mesh::Envelope envelope;
    const auto deliver = [&] {
        REQUIRE(a.send("b", std::string_view(bytes)).ok());
        REQUIRE_FALSE(b.recv_timeout(envelope, std::chrono::seconds(10)));
        return envelope.payload.data();
    };
    // Each recv gives the overwritten payload's buffer to the pool, and a's next send
    // copies into it. Tried a few times: a reactor's once-a-second drain may empty the
    // pool in between.
    bool reused = false;
    for (int attempt = 0; attempt < 5 && !reused; ++attempt) {
        const void* spent = deliver();
        deliver();  // overwrites the first: its buffer goes to the pool
        reused = deliver() == spent;
    }
    CHECK(reused);
}

TEST_CASE("a pool keeps heap buffers up to its limit and leaves inline and larger payloads as they were") {
    BufferPool pool(4096);
    Payload small(Payload::inline_capacity, 1);
    pool.give(small);
    CHECK(small.size() == Payload::inline_capacity);  // inline: nothing to keep
    CHECK(pool.size() == 0);

    Payload large = heap_payload(8192);
    pool.give(large);
    CHECK(large.size() == 8192);  // above the limit: left to its owner
    CHECK(pool.size() == 0);

    Payload kept = heap_payload(1000);
    pool.give(kept);
    CHECK(kept.empty());
    CHECK(kept.is_inline());
    CHECK(pool.size() == 1);

    BufferPool none(0);
    Payload other = heap_payload(100);
    none.give(other);
    CHECK(other.size() == 100);
    CHECK(none.size() == 0);
}

TEST_CASE("a taken buffer is the given one: the next payload fills it without allocating") {
    BufferPool pool(4096);
    Payload spent = heap_payload(1000);
    const std::uint8_t* buffer = spent.data();
    pool.give(spent);

    const std::string bytes(900, 'z');
    Payload next = pool.copy(bytes.data(), bytes.size());
    CHECK(next.data() == buffer);
    CHECK(next.view() == bytes);
    CHECK(pool.size() == 0);

    // Nothing kept: a copy allocates, as a Payload of the bytes would.
    Payload fresh = pool.copy(bytes.data(), bytes.size());
    CHECK(fresh.view() == bytes);
    CHECK(fresh.data() != buffer);

    // Up to the inline size a copy stays inline and leaves the pool alone.
    pool.give(fresh);
    Payload tiny = pool.copy("abc", 3);
    CHECK(tiny.is_inline());
    CHECK(tiny.view() == "abc");
    CHECK(pool.size() == 1);

    Payload adopted;
    REQUIRE(pool.take(adopted));
    CHECK(adopted.empty());
    CHECK(!adopted.is_inline());
    CHECK(adopted.heap_capacity() >= 900);
    CHECK(!pool.take(adopted));  // empty: false, payload untouched
    CHECK(!adopted.is_inline());
}

TEST_CASE("a pool holds at most its count of buffers, and drain frees them all") {
    BufferPool pool(4096);
    for (std::size_t i = 0; i < BufferPool::count + 10; ++i) {
        Payload p = heap_payload(100);
        pool.give(p);
        CHECK(p.empty());  // taken, and freed when there was no room
    }
    CHECK(pool.size() == BufferPool::count);
    pool.drain();
    CHECK(pool.size() == 0);
}

TEST_CASE("threads giving and taking at once each get whole buffers") {
    BufferPool pool(4096);
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            const std::string bytes(200 + 10 * t, static_cast<char>('a' + t));
            for (int i = 0; i < 20000; ++i) {
                Payload p = pool.copy(bytes.data(), bytes.size());
                if (p.view() != bytes) failed = true;
                pool.give(p);
            }
        });
    for (auto& t : threads) t.join();
    CHECK(!failed);
    CHECK(pool.size() <= BufferPool::count);
}

TEST_CASE("the frame decoder decodes a body above the inline size into a pooled buffer") {
    BufferPool pool(4096);
    Payload spent = heap_payload(2000);
    const std::uint8_t* buffer = spent.data();
    pool.give(spent);

    mesh::wire::FrameDecoder decoder(1 << 20);
    decoder.use_pool(&pool);
    const std::string body(1500, 'q');
    std::uint8_t header[mesh::wire::header_size];
    mesh::wire::write_header(header, static_cast<std::uint32_t>(body.size()));
    std::error_code ec;
    CHECK(decoder.consume(header, sizeof header, ec) == sizeof header);
    CHECK(decoder.consume(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), ec) == body.size());
    REQUIRE(!ec);
    Payload out;
    REQUIRE(decoder.take_into(out));
    CHECK(out.view() == body);
    CHECK(out.data() == buffer);

    // Without a pool (detached), a body gets a buffer of its own.
    decoder.use_pool(nullptr);
    pool.give(out);
    CHECK(decoder.consume(header, sizeof header, ec) == sizeof header);
    CHECK(decoder.consume(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), ec) == body.size());
    Payload second;
    REQUIRE(decoder.take_into(second));
    CHECK(second.view() == body);
    CHECK(second.data() != buffer);
    CHECK(pool.size() == 1);
}

TEST_CASE("a mesh reuses spent buffers at both ends, and an idle mesh gives them back") {
    mesh::Tcp tcp;
    mesh::Mesh<mesh::Tcp> a, b;
    auto pair = mesh_test::tcp_pair(tcp);
    a.add(std::move(pair.client), "b");
    b.add(std::move(pair.server), "a");
    const std::string bytes(1024, 'm');
    mesh::Envelope envelope;  // reused: each recv gives its old payload's buffer to b's pool
    const auto round_trip = [&] {
        while (!a.send("b", bytes).ok()) std::this_thread::yield();
        REQUIRE(!b.recv_timeout(envelope, std::chrono::seconds(10)));
        CHECK(envelope.payload.view() == bytes);
    };
    // a's writer gives its buffers back once it has copied them into a batch, b's
    // receiver gives back the payloads it overwrites. The sweep that drains the pools
    // runs once a second, so the counts are looked at between messages.
    CHECK(mesh_test::wait_until([&] {
        for (int i = 0; i < 100; ++i) round_trip();
        return a.stats().spare_buffers > 0 && b.stats().spare_buffers > 0;
    }));
    CHECK(a.stats().spare_buffers <= BufferPool::count);
    CHECK(b.stats().spare_buffers <= BufferPool::count);
    // Idle, both give them back.
    CHECK(mesh_test::wait_until([&] { return a.stats().spare_buffers == 0 && b.stats().spare_buffers == 0; }));
}

TEST_CASE("a send refused as full gives its copy's buffer back to the mesh") {
    mesh::Inproc transport;
    mesh::Mesh<mesh::Inproc> m;
    auto listener = transport.listen("inproc://full");
    m.add(transport.connect(listener.endpoint()), "full");
    auto peer = listener.accept();  // never reads: the queue fills
    const std::string bytes(200, 'f');
    while (m.send("full", bytes).ok()) {
    }
    // Nothing else gives buffers to this mesh (in-process payloads move whole), so a
    // spare buffer here is a refused copy's. The sweep empties the pool once a second:
    // look right after a refused send.
    CHECK(mesh_test::wait_until([&] {
        const auto refused = m.send("full", bytes);
        return refused.error == mesh::errc::queue_full && m.stats().spare_buffers >= 1;
    }));
    // And the next copy takes it again: the count does not grow with each refusal.
    for (int i = 0; i < 10; ++i) CHECK(m.send("full", bytes).error == mesh::errc::queue_full);
    CHECK(m.stats().spare_buffers <= 1);
}

} // TEST_SUITE
