#include <mesh/mesh.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {
// Counts the objects alive, to see which ones the ring constructs and destroys.
struct Counted {
    static inline int alive = 0;
    int value = 0;
    Counted() noexcept { ++alive; }
    explicit Counted(int v) noexcept : value(v) { ++alive; }
    Counted(Counted&& other) noexcept : value(other.value) { ++alive; }
    Counted& operator=(Counted&& other) noexcept {
        value = other.value;
        return *this;
    }
    ~Counted() { --alive; }
};
} // namespace

TEST_SUITE("ring") {

TEST_CASE("a ring holds values only while filled: free cells construct nothing, pops and release destroy") {
    Counted::alive = 0;
    {
        mesh::detail::Ring<Counted, 8> ring;
        CHECK(Counted::alive == 0);  // storage for 8, no value built
        for (int i = 0; i < 3; ++i) {
            Counted c(i);
            REQUIRE(ring.try_push(c));
        }
        CHECK(Counted::alive == 3);  // the pushed-from locals are gone, the three queued remain
        {
            Counted out;
            REQUIRE(ring.try_pop(out));
            CHECK(out.value == 0);
            CHECK(Counted::alive == 3);  // two queued and `out`
        }
        ring.release();  // the two still queued are destroyed with the storage
        CHECK(Counted::alive == 0);
        REQUIRE(ring.allocate());
        Counted c(7);
        REQUIRE(ring.try_push(c));
        CHECK(Counted::alive == 2);
    }
    CHECK(Counted::alive == 0);  // destroying the ring destroys what it held
}

TEST_CASE("push moves only on success and pop returns in FIFO order") {
    mesh::detail::Ring<mesh::Payload, 4> ring;
    for (std::uint8_t i = 0; i < 4; ++i) {
        mesh::Payload p{i};
        CHECK(ring.try_push(p));
        CHECK(p.empty());
    }
    mesh::Payload extra{9};
    CHECK_FALSE(ring.try_push(extra));
    CHECK(extra == mesh::Payload{9});
    CHECK(ring.size() == 4);
    for (std::uint8_t i = 0; i < 4; ++i) {
        mesh::Payload out;
        REQUIRE(ring.try_pop(out));
        CHECK(out == mesh::Payload{i});
    }
    mesh::Payload out;
    CHECK_FALSE(ring.try_pop(out));
    CHECK(ring.empty());
}

TEST_CASE("try_consume hands the value over in its cell, and frees the cell even when the consumer throws") {
    Counted::alive = 0;
    {
        mesh::detail::Ring<Counted, 4> ring;
        for (int i = 0; i < 3; ++i) {
            Counted c(i);
            REQUIRE(ring.try_push(c));
        }
        int seen = -1;
        CHECK(ring.try_consume([&](Counted& c) { seen = c.value; }));
        CHECK(seen == 0);
        CHECK(Counted::alive == 2);  // consumed in place, nothing moved out
        CHECK_THROWS_AS(ring.try_consume([](Counted&) { throw std::runtime_error("consumer failed"); }),
                        std::runtime_error);
        CHECK(Counted::alive == 1);  // the value was destroyed all the same
        CHECK(ring.size() == 1);     // and its cell freed: the next one is next
        CHECK(ring.try_consume([&](Counted& c) { seen = c.value; }));
        CHECK(seen == 2);
        CHECK_FALSE(ring.try_consume([&](Counted&) { seen = -2; }));
        CHECK(seen == 2);
    }
    CHECK(Counted::alive == 0);
}

TEST_CASE("try_produce builds the value in its cell, and a declined or throwing make leaves the ring as it was") {
    Counted::alive = 0;
    {
        mesh::detail::Ring<Counted, 2, true, false> ring;
        CHECK(ring.try_produce([](void* cell) {
            ::new (cell) Counted(1);
            return true;
        }));
        CHECK(Counted::alive == 1);  // built where it lies: no temporary, no move
        CHECK_FALSE(ring.try_produce([](void*) { return false; }));
        CHECK_THROWS_AS(ring.try_produce([](void*) -> bool { throw std::runtime_error("make failed"); }),
                        std::runtime_error);
        CHECK(ring.size() == 1);  // neither the declined nor the failed make queued anything
        CHECK(ring.try_produce([](void* cell) {
            ::new (cell) Counted(2);
            return true;
        }));
        bool called = false;
        CHECK_FALSE(ring.try_produce([&](void*) { return called = true; }));  // full
        CHECK_FALSE(called);                                                   // make is not asked
        int seen = 0;
        CHECK(ring.try_consume([&](Counted& c) { seen = c.value; }));
        CHECK(seen == 1);
        CHECK(ring.try_consume([&](Counted& c) { seen = c.value; }));
        CHECK(seen == 2);
    }
    CHECK(Counted::alive == 0);
}

TEST_CASE("capacity one holds exactly one element") {
    mesh::detail::Ring<int, 1> ring;
    int a = 1, b = 2, out = 0;
    CHECK(ring.has_room());
    CHECK(ring.try_push(a));
    CHECK_FALSE(ring.has_room());
    CHECK_FALSE(ring.try_push(b));
    CHECK(ring.try_pop(out));
    CHECK(out == 1);
    CHECK(ring.try_push(b));
    CHECK(ring.try_pop(out));
    CHECK(out == 2);
    CHECK_FALSE(ring.try_pop(out));
}

TEST_CASE("many producers and many consumers: every element exactly once") {
    constexpr int producers = 4, consumers = 4, per_producer = 50000;
    mesh::detail::Ring<int, 256> ring;
    std::vector<std::atomic<int>> seen(producers * per_producer);
    std::atomic<int> consumed{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            for (int i = 0; i < per_producer; ++i) {
                int value = p * per_producer + i;
                while (!ring.try_push(value)) std::this_thread::yield();
            }
        });
    for (int c = 0; c < consumers; ++c)
        threads.emplace_back([&] {
            int value;
            while (consumed.load() < producers * per_producer) {
                if (ring.try_pop(value)) {
                    seen[static_cast<std::size_t>(value)].fetch_add(1);
                    consumed.fetch_add(1);
                } else {
                    std::this_thread::yield();
                }
            }
        });
    for (auto& t : threads) t.join();
    int wrong = 0;
    for (auto& s : seen) wrong += s.load() != 1;
    CHECK(wrong == 0);
    CHECK(ring.empty());
}

TEST_CASE("per-producer order is kept with one consumer") {
    constexpr int producers = 3, per_producer = 30000;
    mesh::detail::Ring<std::pair<int, int>, 64> ring;
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            for (int i = 0; i < per_producer; ++i) {
                std::pair<int, int> v{p, i};
                while (!ring.try_push(v)) std::this_thread::yield();
            }
        });
    std::vector<int> next(producers, 0);
    int out_of_order = 0, received = 0;
    std::pair<int, int> v;
    while (received < producers * per_producer) {
        if (!ring.try_pop(v)) {
            std::this_thread::yield();
            continue;
        }
        out_of_order += v.second != next[static_cast<std::size_t>(v.first)];
        next[static_cast<std::size_t>(v.first)] = v.second + 1;
        ++received;
    }
    for (auto& t : threads) t.join();
    CHECK(out_of_order == 0);
}

}
