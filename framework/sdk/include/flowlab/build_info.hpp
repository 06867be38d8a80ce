// What this build of flowlab was compiled against and which of its fast paths are on: printed by `flowlab _devices`
// and the benchmarks, and checked by the tests against what CMake was asked for.
#pragma once

#include <string>

#include "flowlab/export.hpp"

namespace flowlab {

/// What this build was compiled against and which fast paths it has (build_info()).
struct BuildInfo {
  std::string torch_version;  ///< LibTorch's version, as compiled against ("1.13.1", "2.11.0")
  bool cuda_build = false;    ///< LibTorch is a CUDA build (libtorch_cuda linked): CUDA graphs, GPUs if present
  bool blocked_conv = false;  ///< the U-Net's channel-blocked convolutions through oneDNN 2.x (FLOWLAB_WITH_DNNL)
  bool blas_sgemm = false;    ///< mlp_layers calls the system BLAS's sgemm_ directly (FLOWLAB_WITH_BLAS)
};

FLOWLAB_API BuildInfo build_info();

/// One line: "LibTorch 2.11.0 (CUDA build); fast CPU paths: blocked convolutions off, BLAS sgemm off".
FLOWLAB_API std::string build_info_line();

}  // namespace flowlab
