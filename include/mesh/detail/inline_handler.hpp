#pragma once

#include "mesh/version.hpp"

#include <cstddef>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A one-shot completion handler, void(std::error_code), stored inside the object:
// unlike std::function it never allocates (a handler too large does not compile),
// so waiting for each batch costs no heap.
class InlineHandler {
public:
    static constexpr std::size_t capacity = 64;

    InlineHandler() = default;
    InlineHandler(InlineHandler&& other) noexcept { take(other); }
    InlineHandler& operator=(InlineHandler&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }
    ~InlineHandler() { reset(); }

    template <class Handler>
    void emplace(Handler&& handler) {
        using H = std::decay_t<Handler>;
        static_assert(sizeof(H) <= capacity && alignof(H) <= alignof(std::max_align_t),
                      "handler too large for InlineHandler");
        reset();
        ::new (static_cast<void*>(storage_)) H(std::forward<Handler>(handler));
        invoke_ = [](void* p, std::error_code ec) {
            H h(std::move(*static_cast<H*>(p)));
            static_cast<H*>(p)->~H();
            h(ec);
        };
        destroy_ = [](void* p) { static_cast<H*>(p)->~H(); };
        move_ = [](void* from, void* to) {
            ::new (to) H(std::move(*static_cast<H*>(from)));
            static_cast<H*>(from)->~H();
        };
    }

    explicit operator bool() const noexcept { return invoke_ != nullptr; }

    // Empties this first, so the handler may store a new one while it runs.
    void operator()(std::error_code ec) {
        auto invoke = invoke_;
        invoke_ = nullptr;
        destroy_ = nullptr;
        invoke(storage_, ec);
    }

    void reset() noexcept {
        if (destroy_) destroy_(storage_);
        invoke_ = nullptr;
        destroy_ = nullptr;
    }

private:
    void take(InlineHandler& other) noexcept {
        if (!other.invoke_) return;
        other.move_(other.storage_, storage_);
        invoke_ = std::exchange(other.invoke_, nullptr);
        destroy_ = std::exchange(other.destroy_, nullptr);
        move_ = other.move_;
    }

    alignas(std::max_align_t) unsigned char storage_[capacity];
    void (*invoke_)(void*, std::error_code) = nullptr;
    void (*destroy_)(void*) = nullptr;
    void (*move_)(void*, void*) = nullptr;
};

} // namespace detail
MESH_NAMESPACE_END
