#pragma once

#include "mesh/version.hpp"

#include <cstddef>
#include <cstdint>
#include <system_error>

#include "mesh/error.hpp"

MESH_NAMESPACE_BEGIN
/// Splinter's v1 protocol over bytes: the version handshake, the frame header and an
/// incremental frame decoder. The stream transports use it; it does no I/O.
namespace wire {

/// Version 1 is the only frame format Splinter peers speak.
constexpr std::uint16_t protocol_version = 1;

/// The header's size in bytes: version (2) + payload length (4) + checksum (1).
constexpr std::size_t header_size = 7;

namespace detail {

// Explicit byte shuffling keeps the wire format independent of host endianness and alignment.
inline std::uint16_t load_u16_be(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

inline std::uint32_t load_u32_be(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

inline void store_u16_be(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

inline void store_u32_be(std::uint8_t* p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

} // namespace detail

/// The header's checksum byte, from its first six bytes.
/// LRC: chosen so that all seven header bytes sum to zero modulo 256, which catches every
/// single-bit error in the header. The payload is deliberately not covered (Splinter compatibility).
inline std::uint8_t header_checksum(const std::uint8_t* first_six) noexcept {
    unsigned sum = 0;
    for (std::size_t i = 0; i < header_size - 1; ++i) sum += first_six[i];
    return static_cast<std::uint8_t>(0x100u - (sum & 0xFFu));
}

/// Writes the header_size bytes of a frame header at `out`: the protocol version and
/// `payload_length`, big-endian, then the checksum.
inline void write_header(std::uint8_t* out, std::uint32_t payload_length) noexcept {
    detail::store_u16_be(out, protocol_version);
    detail::store_u32_be(out + 2, payload_length);
    out[6] = header_checksum(out);
}

/// Reads the header at `seven` into `payload_length`, or returns bad_checksum,
/// unsupported_version or message_too_large (a length above `max_payload`).
/// The checksum is checked first so that line noise is reported as corruption rather than as a
/// version or size problem; the size limit is checked before anyone allocates for the payload.
inline std::error_code parse_header(const std::uint8_t* seven, std::size_t max_payload,
                                    std::uint32_t& payload_length) noexcept {
    if (header_checksum(seven) != seven[6]) return errc::bad_checksum;
    if (detail::load_u16_be(seven) != protocol_version) return errc::unsupported_version;
    const std::uint32_t length = detail::load_u32_be(seven + 2);
    if (length > max_payload) return errc::message_too_large;
    payload_length = length;
    return {};
}

} // namespace wire
MESH_NAMESPACE_END
