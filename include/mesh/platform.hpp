#pragma once

/// @file
/// What the library needs of its platform and build, checked before anything else is
/// compiled, and whether the TLS transport is compiled in.

#if !defined(__unix__) && !defined(__APPLE__)
#error "mesh.hpp needs a POSIX system: it uses BSD sockets, SOCK_NONBLOCK and MSG_NOSIGNAL (built and tested on Linux)"
#endif
#if !defined(__cpp_exceptions) && !defined(__EXCEPTIONS)
#error "mesh.hpp needs C++ exceptions: do not compile it with -fno-exceptions"
#endif

/// @def MESH_HAS_TLS
/// 1 when MESH_ENABLE_TLS is defined as 1 or as nothing, else 0
/// (so -DMESH_ENABLE_TLS=0 leaves TLS out). TLS then needs OpenSSL's libssl and libcrypto.
#if !defined(MESH_ENABLE_TLS)
#define MESH_HAS_TLS 0
#elif ~(~MESH_ENABLE_TLS + 0) == 0 && ~(~MESH_ENABLE_TLS + 1) == 1  // defined as nothing
#define MESH_HAS_TLS 1
#elif MESH_ENABLE_TLS
#define MESH_HAS_TLS 1
#else
#define MESH_HAS_TLS 0
#endif
