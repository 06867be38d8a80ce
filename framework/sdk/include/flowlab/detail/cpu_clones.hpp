// Not installed: flowlab's own build detail, not part of the plugin SDK.
#pragma once

/// Marks a loop function to be compiled for AVX-512, AVX2 and the baseline, the variant picked when the library
/// loads (GCC on x86-64; a plain function elsewhere and under ASan). Used by fused.cpp, blocked.cpp, transport.cpp
/// and the flat optimizer.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define FLOWLAB_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FLOWLAB_CPU_CLONES
#endif
