#pragma once

#define MESH_VERSION_MAJOR 0
#define MESH_VERSION_MINOR 1
#define MESH_VERSION_PATCH 0
#define MESH_VERSION (MESH_VERSION_MAJOR * 10000 + MESH_VERSION_MINOR * 100 + MESH_VERSION_PATCH)
#define MESH_VERSION_STRING "0.1.0"

// Everything the library declares lives in an inline namespace named after its version
// (mesh::v0_1_0), so that two versions in one program do not silently mix: their
// symbols differ, and a call from code built against one into code built against the
// other fails to link. Code names it as plain mesh::.
#define MESH_DETAIL_ABI_NAME(major, minor, patch) v##major##_##minor##_##patch
#define MESH_DETAIL_ABI_EXPAND(major, minor, patch) MESH_DETAIL_ABI_NAME(major, minor, patch)
#define MESH_ABI_NAMESPACE MESH_DETAIL_ABI_EXPAND(MESH_VERSION_MAJOR, MESH_VERSION_MINOR, MESH_VERSION_PATCH)
#define MESH_NAMESPACE_BEGIN \
    namespace mesh {         \
    inline namespace MESH_ABI_NAMESPACE {
#define MESH_NAMESPACE_END \
    }                      \
    }
