// Process-wide speed settings: malloc thresholds and thread counts (see runtime.hpp).
#include "flowlab/runtime.hpp"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace flowlab {

void tune_allocator() {
#if defined(__GLIBC__)
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest: HEAP_MAX_SIZE / 2 on 64-bit
  constexpr int kTrimThreshold = 1 << 30;
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

void set_threads(int threads) {
  if (threads < 1) throw Error(fmt::format("threads must be >= 1, got {}", threads));
  // With ATen's OpenMP backend this also calls omp_set_num_threads; OpenBLAS's OpenMP build reads
  // omp_get_max_threads() at every call, so BLAS follows without a call of its own.
  at::set_num_threads(threads);
}

}  // namespace flowlab
