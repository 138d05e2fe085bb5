#pragma once

#include "mesh/version.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

/// @file
/// Payload, the message bytes, kept inline up to MESH_PAYLOAD_INLINE_CAPACITY bytes.

/// Payloads up to this many bytes live inside the Payload object, with no heap
/// allocation. Define it before including the library to change it (every
/// translation unit of a program must agree, as for any type's layout).
#ifndef MESH_PAYLOAD_INLINE_CAPACITY
#define MESH_PAYLOAD_INLINE_CAPACITY 64
#endif

MESH_NAMESPACE_BEGIN

namespace detail {
struct PayloadStorage;
}

/// Message bytes: a value type that keeps small payloads inline and owns a
/// std::vector above that. Moving never copies a heap payload's bytes (its buffer
/// changes hands), and a std::vector is adopted or handed back without a copy.
class Payload {
public:
    /// Payloads up to this many bytes are inline: MESH_PAYLOAD_INLINE_CAPACITY (1 to 255).
    static constexpr std::size_t inline_capacity = MESH_PAYLOAD_INLINE_CAPACITY;
    static_assert(inline_capacity >= 1 && inline_capacity <= 255,
                  "MESH_PAYLOAD_INLINE_CAPACITY must be between 1 and 255");

    using value_type = std::uint8_t;             ///< a byte
    using size_type = std::size_t;               ///< a count of bytes
    using iterator = std::uint8_t*;              ///< a pointer to a byte
    using const_iterator = const std::uint8_t*;  ///< a pointer to a read-only byte

    /// Empty (and inline).
    Payload() noexcept {}
    /// `size` zero bytes.
    explicit Payload(size_type size) { construct_filled(size, 0); }
    /// `size` copies of `byte`.
    Payload(size_type size, std::uint8_t byte) { construct_filled(size, byte); }
    /// Copies the bytes: `size` of them from `data`.
    Payload(const void* data, size_type size) { construct_copy(static_cast<const std::uint8_t*>(data), size); }
    /// Copies the bytes of `bytes`.
    explicit Payload(std::string_view bytes) : Payload(bytes.data(), bytes.size()) {}
    /// Copies the bytes listed.
    Payload(std::initializer_list<std::uint8_t> bytes) : Payload(bytes.begin(), bytes.size()) {}
    /// Copies the elements of [first, last), each converted to a byte.
    template <class It, class = std::enable_if_t<!std::is_integral<It>::value>>
    Payload(It first, It last) {
        const auto n = static_cast<size_type>(std::distance(first, last));
        std::uint8_t* out = construct_uninitialised(n);
        for (; first != last; ++first) *out++ = static_cast<std::uint8_t>(*first);
    }
    /// Adopts the vector's buffer when it is above the inline size (no copy);
    /// copies a small one inline, so that it costs no heap from here on.
    Payload(std::vector<std::uint8_t>&& bytes) {  // NOLINT: implicit on purpose, it is free
        if (bytes.size() <= inline_capacity) construct_copy(bytes.data(), bytes.size());
        else adopt(std::move(bytes));
    }
    /// Copies the vector's bytes.
    Payload(const std::vector<std::uint8_t>& bytes) : Payload(bytes.data(), bytes.size()) {}  // NOLINT: a copy, as asked

    /// Copies the bytes (inline when they fit).
    Payload(const Payload& other) { construct_copy(other.data(), other.size()); }
    /// Takes other's bytes (a heap buffer changes hands) and leaves `other` empty.
    Payload(Payload&& other) noexcept { take(other); }
    /// Copies other's bytes.
    Payload& operator=(const Payload& other) {
        if (this != &other) assign(other.data(), other.size());
        return *this;
    }
    /// Takes other's bytes (a heap buffer changes hands). Leaves `other` empty.
    Payload& operator=(Payload&& other) noexcept {
        if (this != &other) {
            destroy();
            take(other);
        }
        return *this;
    }
    /// Frees the heap buffer, if there is one.
    ~Payload() { destroy(); }

    /// The bytes, read-only.
    const std::uint8_t* data() const noexcept { return on_heap_ ? heap().data() : bytes_; }
    /// The bytes, writable.
    std::uint8_t* data() noexcept { return on_heap_ ? heap().data() : bytes_; }
    /// How many bytes there are.
    size_type size() const noexcept { return on_heap_ ? heap().size() : inline_size_; }
    /// True when there are no bytes.
    bool empty() const noexcept { return size() == 0; }
    /// True while the bytes live inside the object.
    bool is_inline() const noexcept { return !on_heap_; }
    /// Heap bytes held (0 while inline).
    size_type heap_capacity() const noexcept { return on_heap_ ? heap().capacity() : 0; }

    /// The first byte.
    iterator begin() noexcept { return data(); }
    /// Past the last byte.
    iterator end() noexcept { return data() + size(); }
    /// The first byte, read-only.
    const_iterator begin() const noexcept { return data(); }
    /// Past the last byte, read-only.
    const_iterator end() const noexcept { return data() + size(); }
    /// The byte at `i`, unchecked (`i` must be below size()).
    std::uint8_t& operator[](size_type i) noexcept { return data()[i]; }
    /// The byte at `i`, read-only and unchecked (`i` must be below size()).
    const std::uint8_t& operator[](size_type i) const noexcept { return data()[i]; }
    /// The bytes as characters, viewed where they lie (no copy).
    std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data()), size()}; }

    /// The bytes as a vector: handed over without a copy when on the heap (this is
    /// left empty), copied from the inline buffer otherwise.
    std::vector<std::uint8_t> to_vector() && {
        if (!on_heap_) return std::vector<std::uint8_t>(begin(), end());
        std::vector<std::uint8_t> out = std::move(heap());
        destroy();
        return out;
    }
    /// A copy of the bytes as a vector.
    std::vector<std::uint8_t> to_vector() const& { return std::vector<std::uint8_t>(begin(), end()); }

    /// As resize(n), but grows with copies of `byte`.
    void resize(size_type n, std::uint8_t byte) {
        const size_type old = size();
        resize(n);
        if (n > old) std::memset(data() + old, byte, n - old);
    }
    /// Grows with zero bytes or shrinks, keeping the bytes in front. A heap payload
    /// stays on the heap when it shrinks (its buffer is kept, not reallocated).
    void resize(size_type n) {
        if (on_heap_) {
            heap().resize(n);
        } else if (n <= inline_capacity) {
            if (n > inline_size_) std::memset(bytes_ + inline_size_, 0, n - inline_size_);
            inline_size_ = static_cast<std::uint8_t>(n);
        } else {
            std::vector<std::uint8_t> grown(n);
            std::memcpy(grown.data(), bytes_, inline_size_);
            adopt(std::move(grown));
        }
    }

    /// Appends bytes (`n` from `data`); a heap payload grows geometrically, as a vector does.
    void append(const void* data, size_type n) {
        if (n == 0) return;
        const auto* in = static_cast<const std::uint8_t*>(data);
        if (!on_heap_ && inline_size_ + n <= inline_capacity) {
            std::memcpy(bytes_ + inline_size_, in, n);
            inline_size_ = static_cast<std::uint8_t>(inline_size_ + n);
            return;
        }
        if (!on_heap_) {
            // min: never more than the buffer holds, which GCC's -Warray-bounds cannot
            // tell from inline_size_ alone at -O2 (it warned of reading past the object).
            const size_type kept = std::min<size_type>(inline_size_, inline_capacity);
            std::vector<std::uint8_t> grown;
            grown.reserve(std::max(kept + n, 2 * inline_capacity));
            grown.assign(bytes_, bytes_ + kept);
            adopt(std::move(grown));
        }
        heap().insert(heap().end(), in, in + n);
    }

    /// Drops the bytes and frees a heap buffer: empty and inline again.
    void clear() noexcept {
        destroy();
    }

    /// Exchanges the bytes with `other` (heap buffers change hands).
    void swap(Payload& other) noexcept {
        Payload t(std::move(other));
        other = std::move(*this);
        *this = std::move(t);
    }

    /// Equal when the bytes are.
    friend bool operator==(const Payload& a, const Payload& b) noexcept {
        return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0);
    }
    /// Not equal when the bytes differ.
    friend bool operator!=(const Payload& a, const Payload& b) noexcept { return !(a == b); }
    /// Equal when the payload's bytes are the vector's.
    friend bool operator==(const Payload& a, const std::vector<std::uint8_t>& b) noexcept {
        return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0);
    }
    /// Equal when the vector's bytes are the payload's.
    friend bool operator==(const std::vector<std::uint8_t>& a, const Payload& b) noexcept { return b == a; }
    /// Not equal when the payload's bytes differ from the vector's.
    friend bool operator!=(const Payload& a, const std::vector<std::uint8_t>& b) noexcept { return !(a == b); }
    /// Not equal when the vector's bytes differ from the payload's.
    friend bool operator!=(const std::vector<std::uint8_t>& a, const Payload& b) noexcept { return !(b == a); }
    /// Lexicographic order of the bytes (as view() compares them).
    friend bool operator<(const Payload& a, const Payload& b) noexcept { return a.view() < b.view(); }
    /// `b < a`, in the order of operator<.
    friend bool operator>(const Payload& a, const Payload& b) noexcept { return b < a; }
    /// `!(b < a)`, in the order of operator<.
    friend bool operator<=(const Payload& a, const Payload& b) noexcept { return !(b < a); }
    /// `!(a < b)`, in the order of operator<.
    friend bool operator>=(const Payload& a, const Payload& b) noexcept { return !(a < b); }

private:
    friend struct detail::PayloadStorage;  // the buffer pool reuses heap buffers
    using Vector = std::vector<std::uint8_t>;

    Vector& heap() noexcept { return *std::launder(reinterpret_cast<Vector*>(&heap_storage_)); }
    const Vector& heap() const noexcept { return *std::launder(reinterpret_cast<const Vector*>(&heap_storage_)); }

    // Requires an empty inline payload (a fresh or destroyed one).
    void adopt(Vector&& bytes) noexcept {
        ::new (static_cast<void*>(&heap_storage_)) Vector(std::move(bytes));
        on_heap_ = true;
    }

    std::uint8_t* construct_uninitialised(size_type n) {
        if (n <= inline_capacity) {
            inline_size_ = static_cast<std::uint8_t>(n);
            return bytes_;
        }
        adopt(Vector(n));
        return heap().data();
    }
    void construct_copy(const std::uint8_t* in, size_type n) {
        if (n != 0) std::memcpy(construct_uninitialised(n), in, n);
    }
    void construct_filled(size_type n, std::uint8_t byte) {
        if (n <= inline_capacity) std::memset(construct_uninitialised(n), byte, n);
        else adopt(Vector(n, byte));
    }

    void assign(const std::uint8_t* in, size_type n) {
        if (on_heap_ && n > inline_capacity) {
            heap().assign(in, in + n);
            return;
        }
        destroy();
        construct_copy(in, n);
    }

    // Moves other's bytes here (a heap buffer changes hands) and leaves it empty.
    void take(Payload& other) noexcept {
        if (other.on_heap_) {
            adopt(std::move(other.heap()));
            other.destroy();
        } else {
            // The whole buffer, whatever the size: a copy of constant length is a few
            // vector moves, where one of inline_size_ bytes is a call.
            inline_size_ = other.inline_size_;
            std::memcpy(bytes_, other.bytes_, inline_capacity);
            other.inline_size_ = 0;
        }
    }

    // Back to an empty inline payload.
    void destroy() noexcept {
        if (on_heap_) {
            heap().~Vector();
            on_heap_ = false;
        }
        inline_size_ = 0;
    }

    union {
        std::uint8_t bytes_[inline_capacity] = {};  // all defined: a move copies the whole buffer
        alignas(Vector) unsigned char heap_storage_[sizeof(Vector)];
    };
    std::uint8_t inline_size_ = 0;
    bool on_heap_ = false;
};

/// Exchanges the bytes of `a` and `b` (a.swap(b)); found by argument-dependent lookup.
inline void swap(Payload& a, Payload& b) noexcept { a.swap(b); }

MESH_NAMESPACE_END
