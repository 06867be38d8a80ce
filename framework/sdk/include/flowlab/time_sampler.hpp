// Distributions of the training time t on [0, 1].
#pragma once

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

class FLOWLAB_API TimeSampler : public Plugin {
 public:
  /// n times in [0, 1], drawn with torch's default generator (seeded per trial).
  virtual Tensor sample(int64_t n, const at::TensorOptions& options) const = 0;
  /// The analytic CDF P(T <= t) of one draw, for tests and plots.
  virtual double cdf(double t) const = 0;
};

namespace kinds {
using time_sampler = TimeSampler;
}

}  // namespace flowlab
