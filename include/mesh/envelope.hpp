#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mesh {

// Message bytes. Moved through the library, never copied on the in-process path.
using Payload = std::vector<std::uint8_t>;

inline Payload to_payload(const std::string& text) { return Payload(text.begin(), text.end()); }

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

} // namespace mesh
