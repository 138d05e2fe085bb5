// alloc_counter.cpp - the counting allocator of mesh_bench. Defined exactly once, here.
//
// * Replaces every global operator new / operator delete overload (plain, array, nothrow,
//   sized, aligned). operator new counts and takes memory from glibc's __libc_malloc (or
//   posix_memalign for over-aligned types); operator delete hands it back with free().
// * Interposes malloc, calloc and realloc (the executable's definitions take precedence over
//   libc's for the whole process, libzmq included), counts, and forwards to __libc_malloc,
//   __libc_calloc, __libc_realloc. free, posix_memalign & co. are not replaced: the underlying
//   allocator is unchanged, so they stay correct.
// Because operator new does not go through the interposed malloc, every allocation is counted
// once, whether it comes from C++ code (mesh) or C code (libzmq's zmq_msg_init_size).
//
// Counting is off unless bench::alloc_counting_start() was called: the fast path is one relaxed
// load of a flag. While on, each thread increments its own cache-line-sized slot.

#include "bench_common.hpp"

#include <cstdlib>
#include <new>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
}

namespace {

constexpr std::size_t kSlots = 64;

struct alignas(64) Slot {
    std::atomic<std::uint64_t> count{0};
};

Slot g_slots[kSlots];
std::atomic<bool> g_counting{false};
std::atomic<unsigned> g_next_slot{0};
thread_local unsigned t_slot = ~0u;  // constant-initialised: no TLS wrapper, no allocation

inline void count_one() {
    if (!g_counting.load(std::memory_order_relaxed)) return;
    unsigned s = t_slot;
    if (s == ~0u) {
        s = g_next_slot.fetch_add(1, std::memory_order_relaxed) % kSlots;
        t_slot = s;
    }
    g_slots[s].count.fetch_add(1, std::memory_order_relaxed);
}

void* checked_new(std::size_t size) {
    if (size == 0) size = 1;
    for (;;) {
        if (void* p = __libc_malloc(size)) return p;
        std::new_handler h = std::get_new_handler();
        if (!h) throw std::bad_alloc();
        h();
    }
}

void* checked_new_aligned(std::size_t size, std::align_val_t al) {
    std::size_t align = static_cast<std::size_t>(al);
    if (align < sizeof(void*)) align = sizeof(void*);
    if (size == 0) size = 1;
    for (;;) {
        void* p = nullptr;
        if (posix_memalign(&p, align, size) == 0 && p) return p;
        std::new_handler h = std::get_new_handler();
        if (!h) throw std::bad_alloc();
        h();
    }
}

}  // namespace

namespace bench {

void alloc_counting_start() {
    for (auto& s : g_slots) s.count.store(0, std::memory_order_relaxed);
    g_counting.store(true, std::memory_order_seq_cst);
}

std::uint64_t alloc_counting_stop() {
    g_counting.store(false, std::memory_order_seq_cst);
    std::uint64_t total = 0;
    for (auto& s : g_slots) total += s.count.load(std::memory_order_relaxed);
    return total;
}

bool alloc_counting_active() { return g_counting.load(std::memory_order_relaxed); }

}  // namespace bench

// ----- malloc family (C allocations, e.g. inside libzmq) -------------------------------------

extern "C" void* malloc(std::size_t size) noexcept {
    count_one();
    return __libc_malloc(size);
}

extern "C" void* calloc(std::size_t n, std::size_t size) noexcept {
    count_one();
    return __libc_calloc(n, size);
}

extern "C" void* realloc(void* p, std::size_t size) noexcept {
    count_one();
    return __libc_realloc(p, size);
}

// ----- operator new ---------------------------------------------------------------------------

void* operator new(std::size_t size) {
    count_one();
    return checked_new(size);
}
void* operator new[](std::size_t size) {
    count_one();
    return checked_new(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    count_one();
    try {
        return checked_new(size);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    count_one();
    try {
        return checked_new(size);
    } catch (...) {
        return nullptr;
    }
}
void* operator new(std::size_t size, std::align_val_t al) {
    count_one();
    return checked_new_aligned(size, al);
}
void* operator new[](std::size_t size, std::align_val_t al) {
    count_one();
    return checked_new_aligned(size, al);
}
void* operator new(std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
    count_one();
    try {
        return checked_new_aligned(size, al);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
    count_one();
    try {
        return checked_new_aligned(size, al);
    } catch (...) {
        return nullptr;
    }
}

// ----- operator delete ------------------------------------------------------------------------

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
