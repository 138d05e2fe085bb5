#pragma once

// MESH_TEST_ASAN and MESH_TEST_TSAN: 1 in builds under AddressSanitizer or
// ThreadSanitizer, from GCC (__SANITIZE_*__) or Clang (__has_feature), else 0.

#if defined(__SANITIZE_ADDRESS__)
#define MESH_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MESH_TEST_ASAN 1
#endif
#endif
#if !defined(MESH_TEST_ASAN)
#define MESH_TEST_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define MESH_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MESH_TEST_TSAN 1
#endif
#endif
#if !defined(MESH_TEST_TSAN)
#define MESH_TEST_TSAN 0
#endif
