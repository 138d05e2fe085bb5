#pragma once

#include "mesh/version.hpp"

#include <chrono>

MESH_NAMESPACE_BEGIN
namespace detail {

// now + timeout, saturating: a huge timeout means "never", not an overflow into the past.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
    using clock = std::chrono::steady_clock;
    const auto now = clock::now();
    if (timeout <= std::chrono::duration<Rep, Period>::zero()) return now;
    const auto left = clock::time_point::max() - now;
    if (timeout >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(left)) return clock::time_point::max();
    return now + std::chrono::duration_cast<clock::duration>(timeout);
}

} // namespace detail
MESH_NAMESPACE_END
