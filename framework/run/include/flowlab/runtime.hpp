// Process-wide settings that decide CPU speed: glibc's malloc thresholds and the thread counts of ATen, OpenMP and
// OpenBLAS. The flowlab executable applies both at start-up, so its workers (the same executable) have them too.
#pragma once

#include "flowlab/errors.hpp"

namespace flowlab {

/// Keeps glibc's malloc from mapping and unmapping large tensors. By default glibc serves a block of 128 KiB or
/// more (a 256 x 128 float tensor) with mmap and returns it with munmap, and trims the heap top once 128 KiB are
/// free: every such temporary then costs a system call and a page fault per 4 KiB page that the kernel must zero,
/// at every op (measured: 10-15% of a 4x256 MLP training step, more when sampling 10 000 points). This raises the
/// mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 1 GiB, so freed blocks stay in the heap for
/// the next op. The price: the process keeps its peak heap instead of returning it. Leaves a threshold alone when
/// its MALLOC_*_ variable is set, and does nothing without glibc. Call once, at start-up.
FLOWLAB_API void tune_allocator();

/// One thread count for the intra-op pool of ATen and for OpenMP, whose count Debian's OpenBLAS (the OpenMP build)
/// follows: threads >= 1.
FLOWLAB_API void set_threads(int threads);

}  // namespace flowlab
