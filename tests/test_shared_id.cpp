#include <mesh/mesh.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using mesh::detail::IdRef;
using mesh::detail::IdRun;
using mesh::detail::IdSource;
using mesh::detail::SharedId;

// Under AddressSanitizer (CI) a reference counted one too few is a use after free
// here, and one too many a leak at exit.
TEST_SUITE("shared id") {

TEST_CASE("references outlive their source, across blocks, and runs give them back together") {
    std::vector<IdRef> a_refs, b_refs;
    {
        IdSource a("connection-a-with-an-id-longer-than-the-small-string-buffer");
        IdSource b("b");
        for (int i = 0; i < 150; ++i) {  // more than two blocks of a's
            a_refs.push_back(a.next());
            if (i % 3 == 0) b_refs.push_back(b.next());
        }
    }  // both sources are gone; their ids live on in the references

    // Interleaved runs, as a batch recv takes them: a a b a b b ...
    std::size_t ai = 0, bi = 0;
    std::vector<std::string> seen;
    {
        IdRun run;
        while (ai < a_refs.size() || bi < b_refs.size()) {
            const bool take_b = bi < b_refs.size() && (ai == a_refs.size() || (ai + bi) % 4 == 3);
            SharedId* id = (take_b ? b_refs[bi++] : a_refs[ai++]).detach();
            run.add(id);
            seen.push_back(id->text());
        }
    }
    CHECK(seen.size() == 150 + 50);
    CHECK(seen.front() == "connection-a-with-an-id-longer-than-the-small-string-buffer");
    CHECK(std::count(seen.begin(), seen.end(), "b") == 50);
}

TEST_CASE("a reference dropped without being taken gives itself back") {
    IdRef kept;
    {
        IdSource source("dropped");
        IdRef dropped = source.next();
        kept = source.next();
        IdRef moved = std::move(dropped);
        moved.reset();
        CHECK_FALSE(dropped.detach());  // moved from: holds nothing
    }
    SharedId* id = kept.detach();
    CHECK(id->text() == "dropped");
    id->release(1);
}

} // TEST_SUITE("shared id")
