#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using mesh::Payload;

namespace {

constexpr std::size_t inline_size = Payload::inline_capacity;

std::vector<std::uint8_t> pattern(std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return v;
}

bool same_bytes(const Payload& p, const std::vector<std::uint8_t>& v) {
    return p.size() == v.size() && std::equal(p.begin(), p.end(), v.begin());
}

} // namespace

TEST_SUITE("payload") {

TEST_CASE("constructors keep the bytes, inline up to the inline size and on the heap above it") {
    for (std::size_t n : {std::size_t(0), std::size_t(1), inline_size - 1, inline_size, inline_size + 1,
                          std::size_t(4096)}) {
        CAPTURE(n);
        const auto bytes = pattern(n);
        const bool small = n <= inline_size;
        SUBCASE("from a byte pointer and size") {
            Payload p(bytes.data(), bytes.size());
            CHECK(same_bytes(p, bytes));
            CHECK(p.is_inline() == small);
            CHECK(p.heap_capacity() == (small ? 0 : n));
        }
        SUBCASE("from a string_view") {
            const std::string text(bytes.begin(), bytes.end());
            Payload p{std::string_view(text)};
            CHECK(same_bytes(p, bytes));
            CHECK(p.is_inline() == small);
            CHECK(mesh::to_payload(text) == p);
        }
        SUBCASE("from an iterator range") {
            Payload p(bytes.begin(), bytes.end());
            CHECK(same_bytes(p, bytes));
            CHECK(p.is_inline() == small);
        }
        SUBCASE("a size, zero-filled or filled with a byte") {
            Payload zeros(n);
            CHECK(zeros.size() == n);
            CHECK(std::all_of(zeros.begin(), zeros.end(), [](std::uint8_t b) { return b == 0; }));
            Payload filled(n, 0xAB);
            CHECK(filled.size() == n);
            CHECK(std::all_of(filled.begin(), filled.end(), [](std::uint8_t b) { return b == 0xAB; }));
            CHECK(filled.is_inline() == small);
        }
        SUBCASE("a copy of a vector") {
            Payload p(bytes);
            CHECK(same_bytes(p, bytes));
            CHECK(bytes.size() == n);  // the vector is untouched
        }
        SUBCASE("a vector moved in: a large one's buffer is adopted") {
            auto moved = bytes;
            const std::uint8_t* buffer = moved.data();
            Payload p(std::move(moved));
            CHECK(same_bytes(p, bytes));
            CHECK(p.is_inline() == small);
            if (!small) CHECK(p.data() == buffer);  // no copy
        }
    }
    SUBCASE("an initializer list") {
        Payload p{1, 2, 3};
        CHECK(p.size() == 3);
        CHECK(p[0] == 1);
        CHECK(p[2] == 3);
    }
    SUBCASE("default: empty and inline") {
        Payload p;
        CHECK(p.empty());
        CHECK(p.size() == 0);
        CHECK(p.is_inline());
        CHECK(p.begin() == p.end());
    }
}

TEST_CASE("moves leave the source empty - a large payload keeps its buffer") {
    SUBCASE("inline") {
        Payload a(pattern(10));
        Payload b(std::move(a));
        CHECK(same_bytes(b, pattern(10)));
        CHECK(a.empty());  // NOLINT: the moved-from state is specified
        Payload c;
        c = std::move(b);
        CHECK(same_bytes(c, pattern(10)));
        CHECK(b.empty());  // NOLINT
    }
    SUBCASE("heap") {
        Payload a(pattern(100000));
        const std::uint8_t* buffer = a.data();
        Payload b(std::move(a));
        CHECK(b.data() == buffer);
        CHECK(a.empty());  // NOLINT
        CHECK(a.is_inline());  // NOLINT
        Payload c(pattern(3));
        c = std::move(b);
        CHECK(c.data() == buffer);
        CHECK(b.empty());  // NOLINT
        CHECK(same_bytes(c, pattern(100000)));
    }
    SUBCASE("a moved-from payload can be used again") {
        Payload a(pattern(1000));
        Payload b(std::move(a));
        a = Payload(pattern(5));  // NOLINT
        CHECK(same_bytes(a, pattern(5)));
    }
}

TEST_CASE("copies and self-assignment") {
    for (std::size_t n : {std::size_t(5), inline_size, inline_size + 1, std::size_t(5000)}) {
        CAPTURE(n);
        Payload a(pattern(n));
        Payload b(a);
        CHECK(a == b);
        if (!a.is_inline()) CHECK(a.data() != b.data());
        Payload c(pattern(2));
        c = a;
        CHECK(c == a);
        Payload& same = a;
        a = same;  // self copy-assignment
        CHECK(same_bytes(a, pattern(n)));
        a = std::move(same);  // self move-assignment keeps the value
        CHECK(same_bytes(a, pattern(n)));
        // Between inline and heap in both directions.
        Payload big(pattern(3000));
        Payload small(pattern(3));
        big = small;
        CHECK(big == small);
        small = Payload(pattern(3000));
        CHECK(same_bytes(small, pattern(3000)));
    }
}

TEST_CASE("back to a vector: without a copy when the payload holds one") {
    SUBCASE("heap: the buffer is handed over and the payload is left empty") {
        Payload p(pattern(70000));
        const std::uint8_t* buffer = p.data();
        std::vector<std::uint8_t> v = std::move(p).to_vector();
        CHECK(v.data() == buffer);
        CHECK(v == pattern(70000));
        CHECK(p.empty());  // NOLINT
    }
    SUBCASE("inline: copied out") {
        Payload p(pattern(8));
        CHECK(std::move(p).to_vector() == pattern(8));
    }
    SUBCASE("from a const payload: a copy, the payload keeps its bytes") {
        const Payload p(pattern(200));
        CHECK(p.to_vector() == pattern(200));
        CHECK(same_bytes(p, pattern(200)));
    }
}

TEST_CASE("comparison is by bytes, whatever the storage") {
    const Payload a(pattern(10)), b(pattern(10));
    CHECK(a == b);
    CHECK_FALSE(a != b);
    Payload c(pattern(10));
    c[9] = 0;
    CHECK(a != c);
    CHECK(c < a);
    CHECK(a > c);
    CHECK(c <= a);
    CHECK(a >= c);
    CHECK(Payload() < Payload{0});
    CHECK(Payload() == Payload());
    CHECK(a == pattern(10));  // against a vector, both ways
    CHECK(pattern(10) == a);
    CHECK(a != pattern(11));
    // A heap payload shrunk to a small size still equals the inline one.
    Payload shrunk(pattern(1000));
    shrunk.resize(10);
    CHECK_FALSE(shrunk.is_inline());
    CHECK(shrunk == a);
}

TEST_CASE("resize and append cross the inline boundary and keep the bytes") {
    Payload p;
    const auto bytes = pattern(3 * inline_size);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        p.append(&bytes[i], 1);
        CHECK(p.size() == i + 1);
        CHECK(p.is_inline() == (i + 1 <= inline_size));
    }
    CHECK(same_bytes(p, bytes));
    Payload q(pattern(4));
    q.resize(inline_size + 10);
    CHECK_FALSE(q.is_inline());
    CHECK(q[0] == pattern(4)[0]);
    CHECK(q[3] == pattern(4)[3]);
    CHECK(q[inline_size + 9] == 0);
    q.resize(2, 0xEE);
    CHECK(q.size() == 2);
    q.resize(5, 0xEE);
    CHECK(q[4] == 0xEE);
    q.clear();
    CHECK(q.empty());
    CHECK(q.is_inline());
}

TEST_CASE("swap exchanges payloads of either kind") {
    Payload small(pattern(3)), big(pattern(300));
    const std::uint8_t* buffer = big.data();
    swap(small, big);
    CHECK(same_bytes(small, pattern(300)));
    CHECK(small.data() == buffer);
    CHECK(same_bytes(big, pattern(3)));
}

} // TEST_SUITE("payload")

TEST_CASE("queue cells are as large as the README says") {
    // The memory a busy connection uses is documented from these sizes.
    CHECK(sizeof(Payload) + sizeof(std::size_t) == 80);                  // an outgoing cell
    CHECK(sizeof(mesh::detail::Incoming) + sizeof(std::size_t) == 88);  // an incoming cell
}
