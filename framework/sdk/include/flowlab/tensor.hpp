// The tensor API the SDK builds on (ATen only, not torch/torch.h), plus small shape helpers.
#pragma once

#include <ATen/ATen.h>

#include <sstream>
#include <string>

namespace flowlab {

using Tensor = at::Tensor;

/// Views t of shape [B] as [B, 1, ..., 1] so it broadcasts against x of shape [B, ...].
inline Tensor expand_like(const Tensor& t, const Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = t.numel();
  return t.reshape(shape);
}

/// "[4, 2]": a shape for messages.
inline std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream os;
  os << shape;
  return os.str();
}

}  // namespace flowlab
