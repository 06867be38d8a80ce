// Distributions of the training time t on [0, 1].
#pragma once

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// A distribution of the training time t on [0, 1]: the `time_sampler` plugin kind.
class FLOWLAB_API TimeSampler : public Plugin {
 public:
  /// n times in [0, 1], drawn with torch's default generator (seeded per trial).
  virtual Tensor sample(int64_t n, const at::TensorOptions& options) const = 0;
  /// The analytic CDF P(T <= t) of one draw, for tests and plots.
  virtual double cdf(double t) const = 0;
};

namespace kinds {
/// The base class of the `time_sampler` plugin kind (FLOWLAB_PLUGIN(time_sampler, ...)).
using time_sampler = TimeSampler;
}  // namespace kinds

}  // namespace flowlab
