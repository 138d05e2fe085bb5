#pragma once

/// @file
/// The version macros and the versioned inline namespace every declaration lives in.

/// The major version number.
#define MESH_VERSION_MAJOR 0
/// The minor version number.
#define MESH_VERSION_MINOR 1
/// The patch version number.
#define MESH_VERSION_PATCH 0
/// The version as one number: major * 10000 + minor * 100 + patch.
#define MESH_VERSION (MESH_VERSION_MAJOR * 10000 + MESH_VERSION_MINOR * 100 + MESH_VERSION_PATCH)
/// The version as text, "major.minor.patch".
#define MESH_VERSION_STRING "0.1.0"

/// @namespace mesh
/// The library: Mesh, its transports, payloads, envelopes and errors. Everything is
/// declared in the inline namespace MESH_ABI_NAMESPACE (mesh::v0_1_0 for 0.1.0), so
/// that two versions in one program do not silently mix; code writes plain mesh::.

// Everything the library declares lives in an inline namespace named after its version
// (mesh::v0_1_0), so that two versions in one program do not silently mix: their
// symbols differ, and a call from code built against one into code built against the
// other fails to link. Code names it as plain mesh::.
#define MESH_DETAIL_ABI_NAME(major, minor, patch) v##major##_##minor##_##patch
#define MESH_DETAIL_ABI_EXPAND(major, minor, patch) MESH_DETAIL_ABI_NAME(major, minor, patch)
/// The name of the versioned inline namespace inside mesh: `v<major>_<minor>_<patch>`.
#define MESH_ABI_NAMESPACE MESH_DETAIL_ABI_EXPAND(MESH_VERSION_MAJOR, MESH_VERSION_MINOR, MESH_VERSION_PATCH)
/// Opens namespace mesh and its versioned inline namespace (MESH_ABI_NAMESPACE).
#define MESH_NAMESPACE_BEGIN \
    namespace mesh {         \
    inline namespace MESH_ABI_NAMESPACE {
/// Closes what MESH_NAMESPACE_BEGIN opened.
#define MESH_NAMESPACE_END \
    }                      \
    }
