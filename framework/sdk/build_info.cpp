// build_info(): the compile-time facts CMake passed in (FLOWLAB_TORCH_CUDA, FLOWLAB_HAVE_DNNL, FLOWLAB_HAVE_BLAS).
#include "flowlab/build_info.hpp"

#include <fmt/format.h>
#include <torch/version.h>

namespace flowlab {

BuildInfo build_info() {
  BuildInfo b;
  b.torch_version = TORCH_VERSION;
#if FLOWLAB_TORCH_CUDA
  b.cuda_build = true;
#endif
#ifdef FLOWLAB_HAVE_DNNL
  b.blocked_conv = true;
#endif
#ifdef FLOWLAB_HAVE_BLAS
  b.blas_sgemm = true;
#endif
  return b;
}

std::string build_info_line() {
  const BuildInfo b = build_info();
  return fmt::format("LibTorch {} ({}); fast CPU paths: blocked convolutions {}, BLAS sgemm {}", b.torch_version,
                     b.cuda_build ? "CUDA build" : "CPU build", b.blocked_conv ? "on" : "off",
                     b.blas_sgemm ? "on" : "off");
}

}  // namespace flowlab
