#pragma once

#include "mesh/version.hpp"
#include "mesh/platform.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

// SHA-1 comes from libcrypto, which is optional, as for TLS: without MESH_HAS_TLS the
// accept key and the client's response check are left out.
#if MESH_HAS_TLS
#include <openssl/evp.h>
#endif

MESH_NAMESPACE_BEGIN
namespace wire {
namespace ws {

/// The most bytes a handshake's head (its lines up to the blank one) may take by default.
constexpr std::size_t default_handshake_limit = 8 * 1024;

/// Why a handshake was refused.
enum class HandshakeError : std::uint8_t {
    none,                   ///< accepted
    too_large,              ///< the head did not end within the size limit
    malformed,              ///< not HTTP: a bad start line, a line that is not a field, a control character
    not_get,                ///< a request whose method is not GET
    bad_http_version,       ///< not HTTP/1.1
    missing_host,           ///< a request without exactly one Host, or an empty one
    not_upgrade,            ///< no Upgrade field naming websocket
    no_connection_upgrade,  ///< no Connection field naming upgrade
    bad_version,            ///< Sec-WebSocket-Version missing, repeated or not 13
    missing_key,            ///< no Sec-WebSocket-Key
    bad_key,                ///< a Sec-WebSocket-Key that is not base64 of 16 bytes, or repeated
    bad_status,             ///< a response whose status is not 101
    bad_accept,             ///< Sec-WebSocket-Accept missing or not the one the key asks for
    unrequested_option,     ///< a response naming an extension or subprotocol nobody asked for
};

/// A short English description of `error`.
inline const char* describe(HandshakeError error) noexcept {
    switch (error) {
    case HandshakeError::none: return "accepted";
    case HandshakeError::too_large: return "handshake too large";
    case HandshakeError::malformed: return "malformed HTTP";
    case HandshakeError::not_get: return "method is not GET";
    case HandshakeError::bad_http_version: return "not HTTP/1.1";
    case HandshakeError::missing_host: return "no Host field";
    case HandshakeError::not_upgrade: return "no Upgrade: websocket";
    case HandshakeError::no_connection_upgrade: return "no Connection: upgrade";
    case HandshakeError::bad_version: return "Sec-WebSocket-Version is not 13";
    case HandshakeError::missing_key: return "no Sec-WebSocket-Key";
    case HandshakeError::bad_key: return "Sec-WebSocket-Key is not 16 bytes in base64";
    case HandshakeError::bad_status: return "status is not 101";
    case HandshakeError::bad_accept: return "wrong Sec-WebSocket-Accept";
    case HandshakeError::unrequested_option: return "extension or subprotocol not requested";
    }
    return "unknown handshake error";
}

/// The HTTP status a server answers a refused request with (build_rejection()):
/// 426 for a WebSocket version other than 13, 431 for a head over the limit, 400 else.
inline int http_status(HandshakeError error) noexcept {
    switch (error) {
    case HandshakeError::bad_version: return 426;
    case HandshakeError::too_large: return 431;
    default: return 400;
    }
}

namespace detail {

inline constexpr char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline std::string base64_encode(const std::uint8_t* data, std::size_t n) {
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (std::size_t i = 0; i < n; i += 3) {
        const std::size_t left = n - i;
        const std::uint32_t triple = (std::uint32_t{data[i]} << 16) | (left > 1 ? std::uint32_t{data[i + 1]} << 8 : 0u) |
                                     (left > 2 ? std::uint32_t{data[i + 2]} : 0u);
        out.push_back(base64_alphabet[(triple >> 18) & 63]);
        out.push_back(base64_alphabet[(triple >> 12) & 63]);
        out.push_back(left > 1 ? base64_alphabet[(triple >> 6) & 63] : '=');
        out.push_back(left > 2 ? base64_alphabet[triple & 63] : '=');
    }
    return out;
}

inline int base64_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// How many bytes canonical base64 `text` decodes to, or -1: padding only at the end,
// unused bits zero, so each byte string has one spelling.
inline long base64_decoded_size(std::string_view text) noexcept {
    if (text.size() % 4 != 0) return -1;
    long size = 0;
    for (std::size_t i = 0; i < text.size(); i += 4) {
        int values[4];
        int padding = 0;
        for (int j = 0; j < 4; ++j) {
            const char c = text[i + static_cast<std::size_t>(j)];
            if (c == '=') {
                if (i + 4 != text.size() || j < 2) return -1;
                values[j] = 0;
                ++padding;
            } else {
                values[j] = base64_value(c);
                if (values[j] < 0 || padding != 0) return -1;
            }
        }
        if ((padding == 2 && (values[1] & 0x0F) != 0) || (padding == 1 && (values[2] & 0x03) != 0)) return -1;
        size += 3 - padding;
    }
    return size;
}

inline char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

inline bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

// True when the comma-separated `list` holds `token`, compared without case.
inline bool has_token(std::string_view list, std::string_view token) noexcept {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        if (iequals(trim(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

inline bool is_control(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7F;
}

// RFC 7230 tchar: what a field name is made of.
inline bool is_token_char(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Text that may go into a request line or a field value: no control character, no
// blank (which would end a request line early), not empty.
inline bool is_plain_text(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (is_control(c) || is_blank(c)) return false;
    return true;
}

// Collects an HTTP head up to and including its blank line, and not a byte more:
// what follows it is the first WebSocket frame. Lines may end in CRLF or a bare LF
// (RFC 7230 3.5).
class HeadReader {
public:
    enum class State : std::uint8_t { reading, complete, too_large };

    explicit HeadReader(std::size_t limit) noexcept : limit_(limit) {}

    std::size_t feed(const void* data, std::size_t size) {
        const auto* in = static_cast<const char*>(data);
        std::size_t used = 0;
        while (used < size && state_ == State::reading) {
            const char c = in[used++];
            head_.push_back(c);
            if (c == '\n') {
                const bool blank = line_bytes_ == 0 || (line_bytes_ == 1 && head_[head_.size() - 2] == '\r');
                line_bytes_ = 0;
                if (blank) {
                    state_ = State::complete;
                    break;
                }
            } else {
                ++line_bytes_;
            }
            // Refused as soon as the limit is reached without an end, not a byte later.
            if (head_.size() >= limit_) state_ = State::too_large;
        }
        return used;
    }

    State state() const noexcept { return state_; }
    const std::string& head() const noexcept { return head_; }
    void release() noexcept { head_ = std::string(); }

private:
    std::size_t limit_;
    std::string head_;
    std::size_t line_bytes_ = 0;  // bytes of the current line so far
    State state_ = State::reading;
};

// Splits a complete head into its start line and fields, calling f(name, value) for
// each field (value without surrounding blanks). False when a line is not a field:
// no colon, a blank before the colon (refused by RFC 7230 3.2.4, as proxies may read
// such names differently), a folded line, or a control character anywhere.
template <class F>
bool split_head(std::string_view head, std::string_view& start_line, F&& f) {
    bool first = true;
    while (!head.empty()) {
        const std::size_t end = head.find('\n');
        std::string_view line = head.substr(0, end);
        head.remove_prefix(end == std::string_view::npos ? head.size() : end + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) return !first;  // the blank line ends the head
        for (char c : line)
            if (is_control(c)) return false;
        if (first) {
            start_line = line;
            first = false;
            continue;
        }
        const std::size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos) return false;
        const std::string_view name = line.substr(0, colon);
        for (char c : name)
            if (!is_token_char(c)) return false;  // also catches a folded line's leading blank
        f(name, trim(line.substr(colon + 1)));
    }
    return false;  // no blank line: not a complete head
}

} // namespace detail

/// A Sec-WebSocket-Key: the base64 of 16 random bytes, which the caller draws from a
/// good source (each connection's must be new, RFC 6455 4.1).
inline std::string make_key(const std::array<std::uint8_t, 16>& random_bytes) {
    return detail::base64_encode(random_bytes.data(), random_bytes.size());
}

/// The client's upgrade request for `path` (with any query) on `host` (as the Host
/// field should read, with :port unless the default). Empty, as nothing could be
/// sent, when host, path or key hold a blank or a control character, are empty, or
/// the path does not begin with '/': such text would end the line and let whoever
/// wrote it add fields of their own.
inline std::string build_request(std::string_view host, std::string_view path, std::string_view key) {
    if (!detail::is_plain_text(host) || !detail::is_plain_text(path) || path.front() != '/' ||
        !detail::is_plain_text(key))
        return {};
    std::string out;
    out.reserve(160 + host.size() + path.size() + key.size());
    out.append("GET ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    out.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ").append(key);
    out.append("\r\nSec-WebSocket-Version: 13\r\n\r\n");
    return out;
}

/// The server's answer accepting an upgrade: 101 Switching Protocols with
/// `accept` (accept_key() of the client's key).
inline std::string build_response(std::string_view accept) {
    std::string out("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    out.append("Sec-WebSocket-Accept: ").append(accept).append("\r\n\r\n");
    return out;
}

/// The server's answer refusing an upgrade with `status` (400 to 599, else 400; see
/// http_status()), after which it closes. A 426 names the version spoken, 13.
inline std::string build_rejection(int status) {
    if (status < 400 || status > 599) status = 400;
    const char* phrase = "Error";
    switch (status) {
    case 400: phrase = "Bad Request"; break;
    case 403: phrase = "Forbidden"; break;
    case 404: phrase = "Not Found"; break;
    case 426: phrase = "Upgrade Required"; break;
    case 431: phrase = "Request Header Fields Too Large"; break;
    case 500: phrase = "Internal Server Error"; break;
    case 503: phrase = "Service Unavailable"; break;
    default: break;
    }
    std::string out("HTTP/1.1 ");
    out.append(std::to_string(status)).append(" ").append(phrase).append("\r\n");
    if (status == 426) out.append("Sec-WebSocket-Version: 13\r\n");
    out.append("Connection: close\r\nContent-Length: 0\r\n\r\n");
    return out;
}

/// Server side: reads a client's upgrade request, fed in pieces split anywhere, and
/// checks it once its blank line has come.
class RequestParser {
public:
    /// Refuses a head of `max_size` bytes or more without its end (too_large).
    explicit RequestParser(std::size_t max_size = default_handshake_limit) noexcept : reader_(max_size) {}

    /// Consumes bytes up to the end of the head, never past it (what follows is the
    /// client's first frame); returns how many it used, 0 once done().
    std::size_t feed(const void* data, std::size_t size) {
        if (done_) return 0;
        const std::size_t used = reader_.feed(data, size);
        if (reader_.state() == detail::HeadReader::State::too_large) finish(HandshakeError::too_large);
        else if (reader_.state() == detail::HeadReader::State::complete) finish(check());
        return used;
    }

    /// True once the request is accepted or refused.
    bool done() const noexcept { return done_; }
    /// Why the request was refused: none while reading and once accepted.
    HandshakeError error() const noexcept { return error_; }
    /// The request target (path and query) of an accepted request.
    const std::string& path() const noexcept { return path_; }
    /// The Host field of an accepted request.
    const std::string& host() const noexcept { return host_; }
    /// The Sec-WebSocket-Key of an accepted request, for accept_key().
    const std::string& key() const noexcept { return key_; }

private:
    void finish(HandshakeError error) {
        done_ = true;
        error_ = error;
        reader_.release();  // a connection keeps nothing of its head
    }

    HandshakeError check() {
        std::string_view start;
        std::string_view host, key, version;
        int hosts = 0, keys = 0, versions = 0;
        bool upgrade = false, connection = false;
        const bool fields_ok = detail::split_head(reader_.head(), start, [&](std::string_view name, std::string_view value) {
            if (detail::iequals(name, "Host")) {
                host = value;
                ++hosts;
            } else if (detail::iequals(name, "Sec-WebSocket-Key")) {
                key = value;
                ++keys;
            } else if (detail::iequals(name, "Sec-WebSocket-Version")) {
                version = value;
                ++versions;
            } else if (detail::iequals(name, "Upgrade")) {
                // Either may come as several fields, which make one list (RFC 7230 3.2.2).
                upgrade = upgrade || detail::has_token(value, "websocket");
            } else if (detail::iequals(name, "Connection")) {
                connection = connection || detail::has_token(value, "upgrade");
            }
        });
        if (!fields_ok) return HandshakeError::malformed;
        // method SP request-target SP HTTP-version, single spaces
        const std::size_t sp1 = start.find(' ');
        const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : start.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos || start.find(' ', sp2 + 1) != std::string_view::npos)
            return HandshakeError::malformed;
        const std::string_view target = start.substr(sp1 + 1, sp2 - sp1 - 1);
        if (target.empty() || target.front() != '/') return HandshakeError::malformed;
        if (start.substr(0, sp1) != "GET") return HandshakeError::not_get;
        if (start.substr(sp2 + 1) != "HTTP/1.1") return HandshakeError::bad_http_version;
        if (hosts != 1 || host.empty()) return HandshakeError::missing_host;
        if (!upgrade) return HandshakeError::not_upgrade;
        if (!connection) return HandshakeError::no_connection_upgrade;
        if (versions != 1 || version != "13") return HandshakeError::bad_version;
        if (keys == 0) return HandshakeError::missing_key;
        if (keys != 1 || detail::base64_decoded_size(key) != 16) return HandshakeError::bad_key;
        path_.assign(target);
        host_.assign(host);
        key_.assign(key);
        return HandshakeError::none;
    }

    detail::HeadReader reader_;
    bool done_ = false;
    HandshakeError error_ = HandshakeError::none;
    std::string path_, host_, key_;
};

#if MESH_HAS_TLS

/// The GUID RFC 6455 appends to a client's key before hashing it.
constexpr std::string_view accept_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The Sec-WebSocket-Accept that answers `client_key`: base64(SHA-1(key + accept_guid)).
/// Empty if libcrypto cannot hash (SHA-1 disabled), which no response then matches.
inline std::string accept_key(std::string_view client_key) {
    std::string text;
    text.reserve(client_key.size() + accept_guid.size());
    text.append(client_key).append(accept_guid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr) != 1 || size != 20) return {};
    return detail::base64_encode(digest, size);
}

/// Client side: reads the server's answer to build_request(), fed in pieces split
/// anywhere, and checks it once its blank line has come.
class ResponseParser {
public:
    /// Checks the answer to a request sent with `client_key`; refuses a head of
    /// `max_size` bytes or more without its end (too_large).
    explicit ResponseParser(std::string_view client_key, std::size_t max_size = default_handshake_limit)
        : reader_(max_size), expected_accept_(accept_key(client_key)) {}

    /// Consumes bytes up to the end of the head, never past it (what follows is the
    /// server's first frame); returns how many it used, 0 once done().
    std::size_t feed(const void* data, std::size_t size) {
        if (done_) return 0;
        const std::size_t used = reader_.feed(data, size);
        if (reader_.state() == detail::HeadReader::State::too_large) finish(HandshakeError::too_large);
        else if (reader_.state() == detail::HeadReader::State::complete) finish(check());
        return used;
    }

    /// True once the response is accepted or refused.
    bool done() const noexcept { return done_; }
    /// Why the response was refused: none while reading and once accepted.
    HandshakeError error() const noexcept { return error_; }
    /// The status code read (a refusal's, such as 403), 0 before the status line.
    int status() const noexcept { return status_; }

private:
    void finish(HandshakeError error) {
        done_ = true;
        error_ = error;
        reader_.release();
    }

    HandshakeError check() {
        std::string_view start;
        std::string_view accept;
        int accepts = 0;
        bool upgrade = false, connection = false, options = false;
        const bool fields_ok = detail::split_head(reader_.head(), start, [&](std::string_view name, std::string_view value) {
            if (detail::iequals(name, "Sec-WebSocket-Accept")) {
                accept = value;
                ++accepts;
            } else if (detail::iequals(name, "Upgrade")) {
                upgrade = upgrade || detail::has_token(value, "websocket");
            } else if (detail::iequals(name, "Connection")) {
                connection = connection || detail::has_token(value, "upgrade");
            } else if (detail::iequals(name, "Sec-WebSocket-Extensions") ||
                       detail::iequals(name, "Sec-WebSocket-Protocol")) {
                options = true;  // the request asks for neither, so naming one breaks RFC 6455 4.1
            }
        });
        if (!fields_ok) return HandshakeError::malformed;
        // HTTP-version SP 3DIGIT [SP reason-phrase]
        if (start.size() < 12 || (start.size() > 12 && start[12] != ' ') || start[8] != ' ')
            return HandshakeError::malformed;
        int status = 0;
        for (std::size_t i = 9; i < 12; ++i) {
            if (start[i] < '0' || start[i] > '9') return HandshakeError::malformed;
            status = status * 10 + (start[i] - '0');
        }
        status_ = status;
        if (start.substr(0, 8) != "HTTP/1.1") return HandshakeError::bad_http_version;
        if (status != 101) return HandshakeError::bad_status;
        if (!upgrade) return HandshakeError::not_upgrade;
        if (!connection) return HandshakeError::no_connection_upgrade;
        if (accepts != 1 || expected_accept_.empty() || accept != expected_accept_) return HandshakeError::bad_accept;
        if (options) return HandshakeError::unrequested_option;
        return HandshakeError::none;
    }

    detail::HeadReader reader_;
    std::string expected_accept_;
    bool done_ = false;
    HandshakeError error_ = HandshakeError::none;
    int status_ = 0;
};

#endif // MESH_HAS_TLS

} // namespace ws
} // namespace wire
MESH_NAMESPACE_END
