// Velocity networks v(x, t, cond): torch::nn::Module plugins.
#pragma once

#include <torch/nn/module.h>

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// The condition of a batch. Undefined tensors mean "no condition"; `drop` [B] (bool) marks the rows that
/// get the null condition (classifier-free guidance).
struct Condition {
  Tensor label;  ///< [B] int64 class labels
  Tensor attr;   ///< [B, A] continuous attributes
  Tensor drop;   ///< [B] bool
};

/// What the network is built for; passed once, before the first forward.
struct ArchitectureSpec {
  std::vector<int64_t> event_shape;  ///< [D] or [C, H, W]
  int64_t num_classes = 0;           ///< 0: no class conditioning
  int64_t attr_dim = 0;              ///< 0: no continuous condition
};

class FLOWLAB_API Architecture : public Plugin, public torch::nn::Module {
 public:
  /// Creates the submodules for data of this shape and these conditions.
  virtual void build(const ArchitectureSpec& spec) = 0;
  /// v(x, t, cond): x [B, ...], t [B]; returns a tensor shaped like x.
  virtual Tensor forward(const Tensor& x, const Tensor& t, const Condition& cond = Condition()) = 0;
};

namespace kinds {
using architecture = Architecture;
}

}  // namespace flowlab
