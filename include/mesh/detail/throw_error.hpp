#pragma once

#include <system_error>

namespace mesh::detail {

// The throwing overloads of setup operations funnel through here.
inline void throw_if(const std::error_code& ec, const char* what) {
    if (ec) throw std::system_error(ec, what);
}

} // namespace mesh::detail
