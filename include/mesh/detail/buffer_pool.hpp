#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/ring.hpp"
#include "mesh/payload.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

MESH_NAMESPACE_BEGIN
namespace detail {

// Reaches the heap buffer of a Payload, for the pool only.
struct PayloadStorage {
    // Moves a heap payload's buffer to `out` (its bytes stay, to be overwritten) and
    // leaves the payload empty; false for an inline payload, which is left as it was.
    static bool release(Payload& payload, std::vector<std::uint8_t>& out) noexcept {
        if (payload.is_inline()) return false;
        out = std::move(payload.heap());
        payload.destroy();
        return true;
    }
    // An empty payload takes `buffer` as its heap storage, with size 0: what is then
    // appended fills the buffer's capacity before anything is allocated.
    static void adopt(Payload& payload, std::vector<std::uint8_t>&& buffer) noexcept {
        payload.destroy();
        buffer.clear();
        payload.adopt(std::move(buffer));
    }
    // Room for `n` bytes without another allocation; above the inline size the bytes
    // move to the heap.
    static void reserve(Payload& payload, std::size_t n) {
        if (payload.is_inline() ? n <= Payload::inline_capacity : n <= payload.heap_capacity()) return;
        if (payload.is_inline()) {
            std::vector<std::uint8_t> grown;
            grown.reserve(n);
            grown.assign(payload.begin(), payload.end());
            payload.destroy();
            payload.adopt(std::move(grown));
        } else {
            payload.heap().reserve(n);
        }
    }
};

// Heap buffers of spent payloads, kept for the next payload above the inline size.
// A message's buffer is allocated by one thread and freed by another (a sender's
// payload by the reactor's writer, a decoded one by a receiver), and glibc serves
// such frees under a lock of the allocating thread's arena: at 1 KiB that lock, not
// copying, was the cost of the heap sizes. Buffers given back here are taken again
// by whichever thread builds the next payload, so in steady state messages up to
// `max_bytes` allocate nothing.
//
// Bounded twice: at most `count` buffers, each of at most `max_bytes` capacity
// (larger ones are freed at once), so the pool holds at most count * max_bytes.
// The meshes of a process share one pool per `max_bytes` (shared()), and each
// reactor drains it once a second, so idle meshes hold none.
class BufferPool {
public:
    static constexpr std::size_t count = 256;

    // max_bytes = 0: keeps nothing.
    explicit BufferPool(std::size_t max_bytes) : max_bytes_(max_bytes) {}

    std::size_t max_bytes() const noexcept { return max_bytes_; }

    // The pool of the process's meshes for `max_bytes`: an in-process payload is built
    // by one mesh's sender and spent by another mesh's receiver, so only a pool both
    // share brings its buffer back to the next send. The meshes hold it; the last to
    // go frees it. The registry itself is never destroyed, so a mesh that outlives
    // static destruction still finds it.
    static std::shared_ptr<BufferPool> shared(std::size_t max_bytes) {
        struct Registry {
            std::mutex mutex;
            std::unordered_map<std::size_t, std::weak_ptr<BufferPool>> pools;
        };
        static Registry* const registry = new Registry();
        std::lock_guard<std::mutex> lock(registry->mutex);
        auto& entry = registry->pools[max_bytes];
        auto pool = entry.lock();
        if (!pool) entry = pool = std::make_shared<BufferPool>(max_bytes);
        return pool;
    }

    // Takes the heap buffer of `payload` if it fits (freeing it when the pool is
    // full) and leaves `payload` empty; an inline or too large one is left as it was.
    // Any thread.
    void give(Payload& payload) noexcept {
        if (payload.is_inline() || payload.heap_capacity() > max_bytes_) return;
        std::vector<std::uint8_t> buffer;
        PayloadStorage::release(payload, buffer);
        buffers_.try_push(buffer);  // when full, the buffer is freed here
    }

    // Makes `payload` (empty) a heap payload of size 0 on a kept buffer; false, with
    // `payload` untouched, when none is kept. Any thread.
    bool take(Payload& payload) noexcept {
        std::vector<std::uint8_t> buffer;
        if (!buffers_.try_pop(buffer)) return false;
        PayloadStorage::adopt(payload, std::move(buffer));
        return true;
    }

    // A payload holding a copy of `size` bytes at `data`: on a kept buffer when above
    // the inline size and one is kept (no allocation unless it is too small).
    Payload copy(const void* data, std::size_t size) {
        std::vector<std::uint8_t> buffer;
        if (size <= Payload::inline_capacity || !buffers_.try_pop(buffer)) return Payload(data, size);
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        buffer.assign(bytes, bytes + size);
        return Payload(std::move(buffer));  // above the inline size: adopted, not copied
    }

    // How many buffers are kept now (approximate while others give and take).
    std::size_t size() const noexcept { return buffers_.size(); }

    // Frees every kept buffer.
    void drain() noexcept {
        std::vector<std::uint8_t> buffer;
        while (buffers_.try_pop(buffer)) {
        }  // each pop frees the buffer popped before
    }

private:
    const std::size_t max_bytes_;
    Ring<std::vector<std::uint8_t>, count> buffers_;  // any thread gives, any thread takes
};

// A connection that decodes frames takes its payloads' buffers from a mesh's pool
// through use_pool(BufferPool*); one that moves payloads whole (inproc) has none.
template <class C, class = void>
struct uses_buffer_pool : std::false_type {};
template <class C>
struct uses_buffer_pool<C, std::void_t<decltype(std::declval<C&>().use_pool(std::declval<BufferPool*>()))>>
    : std::true_type {};

} // namespace detail
MESH_NAMESPACE_END
