#pragma once

#include "mesh/version.hpp"
#include "mesh/payload.hpp"

#include <string>
#include <string_view>
#include <utility>

MESH_NAMESPACE_BEGIN

/// A Payload holding a copy of the bytes of `text`.
inline Payload to_payload(std::string_view text) { return Payload(text); }

/// On send, `id` names the destination connection; on receive, the connection it came from.
struct Envelope {
    std::string id;   ///< the connection: destination on send, origin on receive
    Payload payload;  ///< the message bytes

    /// An empty id and an empty payload.
    Envelope() = default;
    /// Takes the id and the payload (moved in).
    Envelope(std::string id_, Payload payload_) : id(std::move(id_)), payload(std::move(payload_)) {}

    /// Equal when the ids and the payload bytes are.
    friend bool operator==(const Envelope& a, const Envelope& b) {
        return a.id == b.id && a.payload == b.payload;
    }
    /// Not equal when the ids or the payload bytes differ.
    friend bool operator!=(const Envelope& a, const Envelope& b) { return !(a == b); }
};

MESH_NAMESPACE_END
