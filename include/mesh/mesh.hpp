#pragma once

/// @file
/// mesh.hpp: one background reactor thread moving messages between many connections.
/// This umbrella header is what single_include_gen.py amalgamates into ../../mesh.hpp.

#include "mesh/platform.hpp"
#include "mesh/version.hpp"
#include "mesh/error.hpp"
#include "mesh/config.hpp"
#include "mesh/envelope.hpp"
#include "mesh/send_result.hpp"
#include "mesh/core/events.hpp"
#include "mesh/core/stats.hpp"
#include "mesh/core/mesh.hpp"
#include "mesh/wire/frame_header.hpp"
#include "mesh/wire/frame_decoder.hpp"
#include "mesh/wire/handshake.hpp"
#include "mesh/transport/inproc.hpp"
#include "mesh/transport/tcp.hpp"
#include "mesh/transport/unix.hpp"
// TLS needs OpenSSL: define MESH_ENABLE_TLS=1 and link libssl and libcrypto
// (CMake: link mesh::tls, which does both).
#if MESH_HAS_TLS
#include "mesh/transport/tls.hpp"
#endif
#include "mesh/transport/multi.hpp"
