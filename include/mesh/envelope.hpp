#pragma once

#include "mesh/version.hpp"
#include "mesh/payload.hpp"

#include <string>
#include <string_view>
#include <utility>

MESH_NAMESPACE_BEGIN

inline Payload to_payload(std::string_view text) { return Payload(text); }

// On send, `id` names the destination connection; on receive, the connection it came from.
struct Envelope {
    std::string id;
    Payload payload;

    Envelope() = default;
    Envelope(std::string id_, Payload payload_) : id(std::move(id_)), payload(std::move(payload_)) {}

    friend bool operator==(const Envelope& a, const Envelope& b) {
        return a.id == b.id && a.payload == b.payload;
    }
    friend bool operator!=(const Envelope& a, const Envelope& b) { return !(a == b); }
};

MESH_NAMESPACE_END
