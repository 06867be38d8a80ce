// Couplings pair noise and data within a batch (independent, minibatch OT, reflow pairs).
#pragma once

#include <utility>

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

class FLOWLAB_API Coupling : public Plugin {
 public:
  /// Returns (x0, x1) re-paired; both keep their shapes [B, ...].
  virtual std::pair<Tensor, Tensor> couple(const Tensor& x0, const Tensor& x1) const = 0;
};

namespace kinds {
using coupling = Coupling;
}

}  // namespace flowlab
