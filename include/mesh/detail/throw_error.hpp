#pragma once

#include "mesh/version.hpp"

#include <string>
#include <string_view>
#include <system_error>

MESH_NAMESPACE_BEGIN
namespace detail {

// Why the last setup call on this thread failed, in words, where the error code alone
// does not say it ("the port is not a number", "in the TLS handshake"). Set by the
// step that fails, read by or_throw right after the call it made on the same thread,
// so no other thread or call can come between. Static strings only: setting it never
// allocates.
inline thread_local const char* failure_detail = nullptr;

inline void note_failure(const char* detail) noexcept { failure_detail = detail; }

// The throwing overloads of setup operations funnel through here.
inline void throw_if(const std::error_code& ec, const char* what) {
    if (ec) throw std::system_error(ec, what);
}

// Runs the error_code form of a call and throws what it reports, naming the call,
// what it was about (an endpoint or id) and the failure's detail:
//   connect "127.0.0.1:notaport" (the port is not a number): invalid endpoint
template <class Call>
auto or_throw(const char* what, std::string_view subject, Call&& call) {
    failure_detail = nullptr;
    std::error_code ec;
    auto result = call(ec);
    if (ec) {
        std::string message = std::string(what) + " \"" + std::string(subject) + "\"";
        if (failure_detail) message += std::string(" (") + failure_detail + ")";
        throw std::system_error(ec, message);
    }
    return result;
}

} // namespace detail
MESH_NAMESPACE_END
