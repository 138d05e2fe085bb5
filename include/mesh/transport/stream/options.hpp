#pragma once

#include "mesh/version.hpp"

#include <chrono>
#include <cstddef>

MESH_NAMESPACE_BEGIN

/// TCP keepalive probes (tcp:// and tcps://; unix:// has none). The kernel probes a
/// connection that has been quiet for `idle`, every `interval`, and after `count`
/// probes go unanswered ends it (the disconnect reason is then a timeout from the
/// operating system). It needs nothing from the peer, so it works with Splinter nodes,
/// and it finds peers that vanished without closing (a host gone, a cable cut).
struct TcpKeepalive {
    bool enabled = false;                ///< off by default
    std::chrono::seconds idle{60};       ///< quiet time before the first probe
    std::chrono::seconds interval{10};   ///< time between probes
    int count = 5;                       ///< unanswered probes that end the connection
};

/// Settings of the stream transports (Tcp, Unix, and Tls through TlsOptions::stream).
struct StreamOptions {
    std::size_t max_message_size = 16 * 1024 * 1024;  ///< larger frames are refused, before allocation
    std::chrono::milliseconds connect_timeout{10000};    ///< connect: the limit on the socket connect
    std::chrono::milliseconds handshake_timeout{10000};  ///< TLS and version handshakes, both roles
    /// accept_from: a connection arriving while this many handshakes are running is
    /// closed at once and counted (0: no limit). Bounds what a flood of slow or silent
    /// clients can hold (descriptors, TLS state) and the reactor time it can take.
    std::size_t max_pending_handshakes = 256;
    /// In a Mesh, a frame a peer has begun must be whole within this, or the connection
    /// ends with errc::frame_timeout: a peer that trickles a frame (a byte a second)
    /// holds no memory and no connection for longer (0: no limit). Checked once a second.
    std::chrono::milliseconds frame_timeout{60000};
    /// In a Mesh, a connection that receives nothing for this long ends with
    /// errc::idle_timeout, so that an application's own heartbeats find half-open peers
    /// (0: off, the default). While any connection has it, the mesh looks at every
    /// connection once a second.
    std::chrono::milliseconds read_idle_timeout{0};
    /// In a Mesh, a connection whose write makes no progress for this long (the peer
    /// stopped reading) ends with errc::write_stalled, and what it held is counted as
    /// discarded (0: off, the default). Checked once a second.
    std::chrono::milliseconds write_stall_timeout{0};
    TcpKeepalive keepalive;  ///< tcp:// and tcps:// only
};

MESH_NAMESPACE_END
