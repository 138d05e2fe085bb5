#pragma once

#include "mesh/version.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// Fixed-capacity lock-free ring, safe for many producers and many consumers
// (D. Vyukov's bounded queue). Every cell carries a sequence number that says
// whose turn it is, so a producer and a consumer never touch the same cell at once
// and neither side needs a lock. Capacity is a compile-time power of two.
// Sequence numbers count in steps of two (free for lap position p: 2p, filled: 2p+1)
// so that "filled" and "free for the next lap" differ even at capacity 1.
// SingleProducer / SingleConsumer promise that only one thread at a time pushes /
// pops; that side then claims its slot with a plain store instead of a CAS.
template <class T, std::size_t Capacity, bool SingleProducer = false, bool SingleConsumer = false>
class Ring {
    static_assert(Capacity >= 1, "Ring capacity must be at least 1");
    static_assert((Capacity & (Capacity - 1)) == 0, "Ring capacity must be a power of two");
    static_assert(std::is_nothrow_move_constructible<T>::value && std::is_nothrow_move_assignable<T>::value,
                  "Ring values must move without throwing: push and pop cannot fail halfway");

public:
    static constexpr std::size_t capacity = Capacity;

    // A ring may start without storage (allocate_now = false) and give it back while
    // unused (release): idle connections then cost no ring memory. Neither may overlap
    // a push, nor release a pop; a pop (or front_ready) may overlap allocate, and then
    // sees either no storage (so nothing to pop) or the fresh, initialised cells, which
    // the release store of the pointer publishes. Pushes and pops fail without storage.
    explicit Ring(bool allocate_now = true) {
        if (allocate_now && !allocate()) throw std::bad_alloc();
    }
    ~Ring() { free_cells(cells_.load(std::memory_order_relaxed)); }

    // False when memory for the cells cannot be had; the ring then stays without storage.
    bool allocate() noexcept {
        Cell* fresh = new (std::nothrow) Cell[Capacity];
        if (!fresh) return false;
        for (std::size_t i = 0; i < Capacity; ++i) fresh[i].sequence.store(2 * i, std::memory_order_relaxed);
        head_.store(0, std::memory_order_relaxed);
        tail_.store(0, std::memory_order_relaxed);
        free_cells(cells_.exchange(fresh, std::memory_order_acq_rel));
        return true;
    }

    void release() noexcept {
        free_cells(cells_.exchange(nullptr, std::memory_order_acq_rel));
        head_.store(0, std::memory_order_relaxed);
        tail_.store(0, std::memory_order_relaxed);
    }

    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // Moves from `value` only on success, so a caller that gets `false` still owns it.
    bool try_push(T& value) noexcept {
        Cell* const cells = cells_.load(std::memory_order_acquire);
        if (!cells) return false;
        Cell* cell;
        std::size_t pos = head_.load(std::memory_order_relaxed);
        for (;;) {
            cell = &cells[pos & mask];
            // acquire: the consumer that freed this cell has finished moving out of it
            const std::size_t seq = cell->sequence.load(std::memory_order_acquire);
            const auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(2 * pos);
            if (diff == 0) {
                if (SingleProducer) {
                    head_.store(pos + 1, std::memory_order_relaxed);
                    break;
                }
                if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
            } else if (diff < 0) {
                return false;  // the cell one lap behind is still occupied: full
            } else {
                pos = head_.load(std::memory_order_relaxed);
            }
        }
        ::new (static_cast<void*>(cell->storage)) T(std::move(value));
        // release: the value is complete before a consumer may see the cell as filled
        cell->sequence.store(2 * pos + 1, std::memory_order_release);
        return true;
    }

    // The single producer's push in place: when a cell is free, make(storage) either
    // constructs a T there and returns true (the cell is then filled) or constructs
    // nothing and returns false (the ring is left as it was). A producer that builds
    // the value where it lies saves a move through a temporary. False when full.
    template <class Make>
    bool try_produce(Make&& make) noexcept(noexcept(make(static_cast<void*>(nullptr)))) {
        static_assert(SingleProducer, "try_produce claims its cell with a plain store: one producer only");
        Cell* const cells = cells_.load(std::memory_order_acquire);
        if (!cells) return false;
        const std::size_t pos = head_.load(std::memory_order_relaxed);
        Cell* const cell = &cells[pos & mask];
        // acquire: the consumer that freed this cell has finished with it
        if (cell->sequence.load(std::memory_order_acquire) != 2 * pos) return false;
        if (!make(static_cast<void*>(cell->storage))) return false;
        head_.store(pos + 1, std::memory_order_relaxed);
        // release: the value is complete before a consumer may see the cell as filled
        cell->sequence.store(2 * pos + 1, std::memory_order_release);
        return true;
    }

    bool try_pop(T& out) noexcept {
        return try_consume([&out](T& value) noexcept { out = std::move(value); });
    }

    // Pops by calling use(value) on the value where it lies, then destroying it there:
    // a consumer that copies the bytes out, or moves the value to its final place, saves
    // a move into a temporary and leaves the cell's value bytes unwritten (only its
    // sequence changes hands). If use throws, the value is still destroyed and the
    // cell freed: the element is consumed either way.
    template <class Use>
    bool try_consume(Use&& use) noexcept(noexcept(use(std::declval<T&>()))) {
        Cell* const cells = cells_.load(std::memory_order_acquire);
        if (!cells) return false;
        Cell* cell;
        std::size_t pos = tail_.load(std::memory_order_relaxed);
        for (;;) {
            cell = &cells[pos & mask];
            // acquire: pairs with the producer's release, so the value is visible
            const std::size_t seq = cell->sequence.load(std::memory_order_acquire);
            const auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(2 * pos + 1);
            if (diff == 0) {
                if (SingleConsumer) {
                    tail_.store(pos + 1, std::memory_order_relaxed);
                    break;
                }
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
            } else if (diff < 0) {
                return false;  // not filled yet: empty
            } else {
                pos = tail_.load(std::memory_order_relaxed);
            }
        }
        struct Free {
            Cell* cell;
            std::size_t next_lap;
            ~Free() {
                cell->value()->~T();
                // release: the cell is free for the producer one lap ahead
                cell->sequence.store(next_lap, std::memory_order_release);
            }
        } free{cell, 2 * (pos + Capacity)};
        use(*cell->value());
        return true;
    }

    // True when a push by the only producer would succeed now. Only meaningful
    // when a single thread pushes; then room can only grow until it pushes again.
    bool has_room() const noexcept {
        Cell* const cells = cells_.load(std::memory_order_acquire);
        if (!cells) return false;
        const std::size_t pos = head_.load(std::memory_order_relaxed);
        return cells[pos & mask].sequence.load(std::memory_order_acquire) == 2 * pos;
    }

    // True when the next pop would succeed. Unlike size(), which counts cells that
    // producers have claimed, this sees only filled ones, so a consumer that waits on it
    // never spins on a producer that was descheduled between claiming and filling.
    // Only meaningful to the (single) consumer.
    bool front_ready() const noexcept {
        Cell* const cells = cells_.load(std::memory_order_acquire);
        if (!cells) return false;
        const std::size_t pos = tail_.load(std::memory_order_relaxed);
        return cells[pos & mask].sequence.load(std::memory_order_acquire) == 2 * pos + 1;
    }

    // Approximate while other threads push or pop; exact when they are quiet.
    std::size_t size() const noexcept {
        const std::size_t tail = tail_.load(std::memory_order_acquire);
        const std::size_t head = head_.load(std::memory_order_acquire);
        return head >= tail ? head - tail : 0;
    }

    bool empty() const noexcept { return size() == 0; }

    // The memory the cells take now: all of it, or nothing while released.
    std::size_t storage_bytes() const noexcept {
        return cells_.load(std::memory_order_relaxed) ? Capacity * sizeof(Cell) : 0;
    }

private:
    static constexpr std::size_t mask = Capacity - 1;
    static constexpr std::size_t line = 64;

    // A cell holds a value only while filled: a free cell is raw bytes, so storage
    // costs no construction and a pop leaves nothing behind to drop.
    struct Cell {
        std::atomic<std::size_t> sequence;
        alignas(T) unsigned char storage[sizeof(T)];
        T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
    };

    // Only while no push or pop runs: a cell is then either free or filled (odd).
    static void free_cells(Cell* cells) noexcept {
        if (!cells) return;
        for (std::size_t i = 0; i < Capacity; ++i)
            if (cells[i].sequence.load(std::memory_order_relaxed) & 1) cells[i].value()->~T();
        delete[] cells;
    }

    // head_ and tail_ on separate cache lines: producers and consumers do not
    // invalidate each other's line on every operation.
    alignas(line) std::atomic<std::size_t> head_{0};
    alignas(line) std::atomic<std::size_t> tail_{0};
    alignas(line) std::atomic<Cell*> cells_{nullptr};
};

} // namespace detail
MESH_NAMESPACE_END
