#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"

#include <string>
#include <system_error>
#include <string_view>

MESH_NAMESPACE_BEGIN
namespace detail {

// "scheme://rest" -> scheme; "" when the string has no scheme.
inline std::string_view endpoint_scheme(std::string_view endpoint) {
    const auto pos = endpoint.find("://");
    return pos == std::string_view::npos ? std::string_view{} : endpoint.substr(0, pos);
}

// "scheme://rest" -> rest; the whole string when it has no scheme.
inline std::string_view endpoint_address(std::string_view endpoint) {
    const auto pos = endpoint.find("://");
    return pos == std::string_view::npos ? endpoint : endpoint.substr(pos + 3);
}

// errc::invalid_endpoint, with why for the throwing forms' message.
inline std::error_code invalid_endpoint(const char* why) noexcept {
    note_failure(why);
    return errc::invalid_endpoint;
}

} // namespace detail
MESH_NAMESPACE_END
