// Loss weightings w(t) in E[w(t) |v(x_t, t) - u_t|^2]: the weight on the velocity loss, as the engine uses it
// (flow_matching_loss: the batch mean of w(t) times each row's mean squared velocity error, no normalisation of w).
// A weighting that its paper defines on another loss (eps- or x1-prediction) returns that weight converted to the
// velocity loss for the given path; each plugin's header comment says which loss its source weights and how.
#pragma once

#include "flowlab/path.hpp"

namespace flowlab {

/// The loss weight w(t) on the velocity loss: the `weighting` plugin kind.
class FLOWLAB_API Weighting : public Plugin {
 public:
  /// w(t) for times t [B], shaped [B]. `path` gives the schedule for SNR-based weightings.
  virtual Tensor weight(const Tensor& t, const Path& path) const = 0;
};

namespace kinds {
/// The base class of the `weighting` plugin kind (FLOWLAB_PLUGIN(weighting, ...)).
using weighting = Weighting;
}  // namespace kinds

}  // namespace flowlab
