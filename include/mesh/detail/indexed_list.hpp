#pragma once

#include "mesh/version.hpp"

#include <cstddef>
#include <vector>

MESH_NAMESPACE_BEGIN
namespace detail {

// The place of an item that is in no IndexedList.
inline constexpr std::size_t not_listed = static_cast<std::size_t>(-1);

// A list of pointers to items that know their own place in it (the member Slot,
// not_listed while out): adding and removing cost O(1), and a pass visits only
// the members, however many items exist. Removing moves the last member into the gap.
template <class T, std::size_t T::*Slot>
class IndexedList {
public:
    std::size_t size() const noexcept { return items_.size(); }
    T& operator[](std::size_t i) const noexcept { return *items_[i]; }

    // Room for `n` members, so that adding allocates nothing below that.
    void reserve(std::size_t n) {
        if (items_.capacity() < n) items_.reserve(2 * n);
    }

    void add(T& item) {
        if (item.*Slot != not_listed) return;
        item.*Slot = items_.size();
        items_.push_back(&item);
    }

    void remove(T& item) noexcept {
        const std::size_t at = item.*Slot;
        if (at == not_listed) return;
        T* last = items_.back();
        items_[at] = last;
        last->*Slot = at;
        items_.pop_back();
        item.*Slot = not_listed;
    }

private:
    std::vector<T*> items_;
};

} // namespace detail
MESH_NAMESPACE_END
