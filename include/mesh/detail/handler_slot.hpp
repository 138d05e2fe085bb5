#pragma once

#include "mesh/version.hpp"

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>

MESH_NAMESPACE_BEGIN
namespace detail {

// Memory for one asynchronous handler at a time. A connection's writer wake-up is
// posted from a sender's thread, where Asio's own handler cache does not reach; with
// this slot that post allocates nothing. Only one wake-up per connection is ever in
// flight, and Asio frees a handler's memory before running it, so one slot suffices;
// anything larger, or a second user, falls back to the heap.
class HandlerSlot {
public:
    static constexpr std::size_t size = 256;

    void* allocate(std::size_t bytes) {
        bool expected = false;
        if (bytes <= size && used_.compare_exchange_strong(expected, true, std::memory_order_acquire))
            return storage_;
        return ::operator new(bytes);
    }

    void deallocate(void* p) {
        if (p == storage_) used_.store(false, std::memory_order_release);
        else ::operator delete(p);
    }

private:
    alignas(std::max_align_t) unsigned char storage_[size];
    std::atomic<bool> used_{false};
};

template <class T>
class SlotAllocator {
public:
    using value_type = T;

    explicit SlotAllocator(HandlerSlot& slot) noexcept : slot_(&slot) {}
    template <class U>
    SlotAllocator(const SlotAllocator<U>& other) noexcept : slot_(other.slot()) {}

    T* allocate(std::size_t n) { return static_cast<T*>(slot_->allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { slot_->deallocate(p); }

    HandlerSlot* slot() const noexcept { return slot_; }
    template <class U>
    bool operator==(const SlotAllocator<U>& other) const noexcept { return slot_ == other.slot(); }
    template <class U>
    bool operator!=(const SlotAllocator<U>& other) const noexcept { return slot_ != other.slot(); }

private:
    HandlerSlot* slot_;
};

} // namespace detail
MESH_NAMESPACE_END
