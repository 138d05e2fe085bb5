#pragma once

#include <cstdio>

// A failed invariant names itself, then traps: libFuzzer saves the input, and
// merged traps in optimised code cannot hide which check it was.
#define FUZZ_CHECK(condition)                                                                   \
    do {                                                                                        \
        if (!(condition)) {                                                                     \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
            __builtin_trap();                                                                   \
        }                                                                                       \
    } while (0)
