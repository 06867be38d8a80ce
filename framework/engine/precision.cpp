// PrecisionScope: autocast for bf16, CUDA's TF32 flags for tf32 (precision.hpp).
#include "flowlab/precision.hpp"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace flowlab {
namespace {

bool autocast_enabled(at::DeviceType d) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::is_autocast_enabled(d);
#else
  return d == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

void set_autocast(at::DeviceType d, bool on, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(d, on);
  at::autocast::set_autocast_dtype(d, dtype);
#else
  if (d == at::kCPU) {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

at::ScalarType autocast_dtype(at::DeviceType d) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::get_autocast_dtype(d);
#else
  return d == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

}  // namespace

std::string applied_precision(const std::string& precision, const at::Device& device) {
  return precision == "bf16" || (precision == "tf32" && device.is_cuda()) ? precision : "fp32";
}

PrecisionScope::PrecisionScope(const std::string& precision, const at::Device& device) : applied_("fp32") {
  if (precision == "bf16") {
    autocast_device_ = device.type();
    autocast_ = true;
    autocast_was_ = autocast_enabled(autocast_device_);
    autocast_dtype_was_ = autocast_dtype(autocast_device_);
    set_autocast(autocast_device_, true, at::kBFloat16);
    applied_ = "bf16";
  } else if (precision == "tf32" && device.is_cuda()) {
    auto& ctx = at::globalContext();
    tf32_ = true;
    tf32_cublas_was_ = ctx.allowTF32CuBLAS();
    tf32_cudnn_was_ = ctx.allowTF32CuDNN();
    ctx.setAllowTF32CuBLAS(true);
    ctx.setAllowTF32CuDNN(true);
    applied_ = "tf32";
  }
}

PrecisionScope::~PrecisionScope() {
  if (autocast_) {
    set_autocast(autocast_device_, autocast_was_, autocast_dtype_was_);
    if (!autocast_was_) at::autocast::clear_cache();
  }
  if (tf32_) {
    auto& ctx = at::globalContext();
    ctx.setAllowTF32CuBLAS(tf32_cublas_was_);
    ctx.setAllowTF32CuDNN(tf32_cudnn_was_);
  }
}

}  // namespace flowlab
