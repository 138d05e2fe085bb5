#pragma once

#include "mesh/version.hpp"

#include <system_error>

MESH_NAMESPACE_BEGIN

/// What send reports. On failure the envelope is left untouched with the caller.
struct [[nodiscard]] SendResult {
    std::error_code error;   ///< empty on success; errc::not_found, queue_full, disconnected, ...
    std::error_code reason;  ///< with errc::disconnected: why the connection ended

    /// True on success (`error` is empty): the payload was queued.
    bool ok() const noexcept { return !error; }
};

MESH_NAMESPACE_END
