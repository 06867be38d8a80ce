// train.precision: the arithmetic a trial trains and samples in.
//   fp32  plain float32 (the default).
//   bf16  autocast to bfloat16 (CUDA, and CPU, where both LibTorch builds flowlab supports have it): matrix
//         products and convolutions in bf16, reductions and the loss in float32; weights, optimizer and the
//         solver's state stay float32.
//   tf32  float32 tensors, with CUDA's TF32 tensor-core mode for matrix products and cuDNN convolutions. A CUDA
//         flag: on a CPU device it changes nothing, and the trial records "fp32" as what ran.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "flowlab/choices.hpp"  // precisions()
#include "flowlab/export.hpp"

namespace flowlab {

/// What `precision` amounts to on `device`: itself, or "fp32" where it does not apply (tf32 off CUDA).
FLOWLAB_API std::string applied_precision(const std::string& precision, const at::Device& device);

/// For as long as it lives, this thread computes in `precision` on `device`; the previous state comes back at its
/// end. tf32 sets process-wide CUDA flags (restored at the end too).
class FLOWLAB_API PrecisionScope {
 public:
  PrecisionScope(const std::string& precision, const at::Device& device);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;
  /// What runs: the precision asked for, or "fp32" where it does not apply (tf32 on a CPU device).
  const std::string& applied() const { return applied_; }

 private:
  std::string applied_;
  at::DeviceType autocast_device_ = at::DeviceType::CPU;
  bool autocast_ = false, autocast_was_ = false;
  at::ScalarType autocast_dtype_was_ = at::kFloat;
  bool tf32_ = false, tf32_cublas_was_ = false, tf32_cudnn_was_ = false;
};

}  // namespace flowlab
