#pragma once

#include "mesh/version.hpp"

#include <string>
#include <system_error>
#include <type_traits>

MESH_NAMESPACE_BEGIN

/// Every error the library reports is a std::error_code of this enum's category,
/// or an OS/Asio error passed through unchanged (connection reset, refused, ...).
enum class errc {
    not_found = 1,        ///< no connection is registered under that id
    queue_full,           ///< a bounded queue has no room; the envelope was handed back
    disconnected,         ///< the connection has ended; the envelope was handed back
    message_too_large,    ///< payload above the configured maximum (send) or announced by a peer
    shut_down,            ///< the mesh was shut down
    duplicate_id,         ///< add: the id is already in use; the connection was handed back
    timeout,              ///< recv_timeout, connect or handshake deadline passed
    would_block,          ///< try_recv: nothing is waiting
    end_of_stream,        ///< the peer closed the connection cleanly
    bad_checksum,         ///< frame header checksum mismatch
    unsupported_version,  ///< frame or handshake version not supported
    handshake_failed,     ///< the version handshake did not complete
    truncated_frame,      ///< the stream ended in the middle of a frame
    address_in_use,       ///< listen: the name or address is taken
    connection_refused,   ///< connect: nobody listens there
    invalid_endpoint,     ///< the endpoint string cannot be parsed
    unknown_scheme,       ///< no transport accepts the endpoint's scheme
    not_connected,        ///< the connection was never connected or is already closed
    tls_config,           ///< TLS settings are missing, unreadable or unsafe
    tls_failure,          ///< a TLS protocol error (bad record, not TLS at all, internal error)
    tls_version_refused,  ///< no TLS version both sides allow (never below 1.2)
    certificate_untrusted,      ///< the peer's certificate does not chain to a trusted CA
    certificate_self_signed,    ///< the peer's certificate signs itself and is not trusted
    certificate_expired,        ///< the peer's certificate is expired or not yet valid
    certificate_name_mismatch,  ///< the peer's certificate is not for the name or address dialled
    certificate_missing,        ///< the peer presented no certificate, and one is required
    on_reactor_thread,  ///< a blocking call (remove, recv, next_event) made on the mesh's own reactor thread
    frame_timeout,      ///< a peer began a frame and did not finish it within StreamOptions::frame_timeout
    idle_timeout,       ///< nothing was received for StreamOptions::read_idle_timeout
    write_stalled,      ///< a write made no progress for StreamOptions::write_stall_timeout
};

namespace detail {

class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "mesh"; }

    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::not_found: return "no connection with that id";
        case errc::queue_full: return "queue full";
        case errc::disconnected: return "connection disconnected";
        case errc::message_too_large: return "message too large";
        case errc::shut_down: return "mesh shut down";
        case errc::duplicate_id: return "duplicate connection id";
        case errc::timeout: return "timed out";
        case errc::would_block: return "no message available";
        case errc::end_of_stream: return "end of stream";
        case errc::bad_checksum: return "bad frame header checksum";
        case errc::unsupported_version: return "unsupported protocol version";
        case errc::handshake_failed: return "version handshake failed";
        case errc::truncated_frame: return "stream ended inside a frame";
        case errc::address_in_use: return "address already in use";
        case errc::connection_refused: return "connection refused";
        case errc::invalid_endpoint: return "invalid endpoint";
        case errc::unknown_scheme: return "unknown protocol scheme";
        case errc::not_connected: return "not connected";
        case errc::tls_config: return "invalid TLS configuration";
        case errc::tls_failure: return "TLS protocol error";
        case errc::tls_version_refused: return "no acceptable TLS version (1.2 or later required)";
        case errc::certificate_untrusted: return "peer certificate not trusted";
        case errc::certificate_self_signed: return "peer certificate is self-signed and not trusted";
        case errc::certificate_expired: return "peer certificate expired or not yet valid";
        case errc::certificate_name_mismatch: return "peer certificate does not match the expected name";
        case errc::certificate_missing: return "peer sent no certificate";
        case errc::on_reactor_thread: return "blocking call on the mesh's reactor thread (it would wait on itself)";
        case errc::frame_timeout: return "the peer left a frame unfinished for longer than the frame timeout";
        case errc::idle_timeout: return "nothing received for longer than the read idle timeout";
        case errc::write_stalled: return "a write made no progress for longer than the write stall timeout";
        }
        return "unknown mesh error";
    }

    // Lets generic code compare against std::errc, e.g. queue_full == resource_unavailable_try_again.
    std::error_condition default_error_condition(int value) const noexcept override {
        switch (static_cast<errc>(value)) {
        case errc::queue_full:
        case errc::would_block: return std::errc::resource_unavailable_try_again;
        case errc::message_too_large: return std::errc::message_size;
        case errc::timeout: return std::errc::timed_out;
        case errc::address_in_use: return std::errc::address_in_use;
        case errc::connection_refused: return std::errc::connection_refused;
        case errc::not_connected: return std::errc::not_connected;
        default: return std::error_condition(value, *this);
        }
    }
};

} // namespace detail

/// The category of every errc code; its name() is "mesh". Never destroyed: a mesh
/// still running while the program exits (a static Mesh, exit() with a mesh alive)
/// may still make and compare error codes. Its conditions compare some values equal
/// to std::errc ones: queue_full and would_block to resource_unavailable_try_again,
/// message_too_large to message_size, timeout to timed_out, and address_in_use,
/// connection_refused and not_connected to their namesakes.
inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl* const category = new detail::error_category_impl();
    return *category;
}

/// An error_code of error_category(); lets an errc be used wherever a std::error_code is.
inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

MESH_NAMESPACE_END

/// @cond
// Lets an errc convert to std::error_code and compare with one.
template <>
struct std::is_error_code_enum<mesh::errc> : std::true_type {};
/// @endcond
