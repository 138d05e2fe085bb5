#pragma once

#include "mesh/version.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "mesh/error.hpp"
#include "mesh/wire/frame_header.hpp"

MESH_NAMESPACE_BEGIN
namespace wire {

/// The handshake's two messages, in bytes. Connector -> listener: min_version,
/// max_version. Listener -> connector: chosen version, 0 = none.
///@{
constexpr std::size_t hello_size = 4, reply_size = 2;
///@}

/// The connector's hello: `min_version` and `max_version`, big-endian.
inline std::array<std::uint8_t, hello_size> make_hello(std::uint16_t min_version = protocol_version,
                                                       std::uint16_t max_version = protocol_version) noexcept {
    std::array<std::uint8_t, hello_size> hello{};
    detail::store_u16_be(hello.data(), min_version);
    detail::store_u16_be(hello.data() + 2, max_version);
    return hello;
}

/// The listener's reply to `hello`: protocol_version when the hello's range holds it,
/// else 00 00 with `ec` = unsupported_version.
/// Listener side. On refusal the 00 00 reply is still returned so the caller can tell the peer
/// why before closing, as Splinter does.
inline std::array<std::uint8_t, reply_size> make_reply(const std::uint8_t* hello, std::error_code& ec) noexcept {
    const std::uint16_t min_version = detail::load_u16_be(hello);
    const std::uint16_t max_version = detail::load_u16_be(hello + 2);
    std::array<std::uint8_t, reply_size> reply{};
    if (min_version <= protocol_version && protocol_version <= max_version) {
        detail::store_u16_be(reply.data(), protocol_version);
        ec.clear();
    } else {
        ec = errc::unsupported_version;
    }
    return reply;
}

/// Checks the listener's reply: {} for version 1, else unsupported_version.
/// Connector side. Only an exact "1" is acceptable: we cannot speak anything else, whatever
/// range we offered.
inline std::error_code check_reply(const std::uint8_t* reply) noexcept {
    if (detail::load_u16_be(reply) == protocol_version) return {};
    return errc::unsupported_version;
}

} // namespace wire
MESH_NAMESPACE_END
