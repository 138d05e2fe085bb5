#pragma once

#include <string>
#include <string_view>

namespace mesh::detail {

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

} // namespace mesh::detail
