// Results' arrays and tensors: flowlab::Array (records.hpp: float32 values and a shape, what results files store)
// to and from at::Tensor, for the engine and the commands that rebuild models from results (sample, tune-grid).
#pragma once

#include <ATen/core/Tensor.h>

#include "flowlab/export.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

/// `t`'s values as float32, row-major, copied to the CPU, with its shape.
FLOWLAB_API Array to_array(const at::Tensor& t);
/// A float32 CPU tensor of `a`'s shape holding a copy of its values.
FLOWLAB_API at::Tensor to_tensor(const Array& a);

}  // namespace flowlab
