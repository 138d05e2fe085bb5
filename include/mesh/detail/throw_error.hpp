#pragma once

#include <system_error>

namespace mesh::detail {

// The throwing overloads of setup operations funnel through here.
inline void throw_if(const std::error_code& ec, const char* what) {
    if (ec) throw std::system_error(ec, what);
}

// Runs the error_code form of a call and throws what it reports.
template <class Call>
auto or_throw(const char* what, Call&& call) {
    std::error_code ec;
    auto result = call(ec);
    throw_if(ec, what);
    return result;
}

} // namespace mesh::detail
