// Time grids: where a fixed-step or multistep solver spends its N steps. A grid maps N to the times
// 0 = t_0 < t_1 < ... < t_N = 1 in flowlab's convention (noise at t = 0, data at t = 1).
#pragma once

#include <string>
#include <vector>

#include "flowlab/plugin.hpp"

namespace flowlab {

class Path;

/// Where a fixed-step or multistep solver spends its N steps: the `time_grid` plugin kind.
class FLOWLAB_API TimeGrid : public Plugin {
 public:
  /// `owner` is "time_grid/<name>", used in messages.
  explicit TimeGrid(std::string owner) : owner_(std::move(owner)) {}
  /// "time_grid/<name>", for messages.
  const std::string& owner() const { return owner_; }
  /// The N + 1 times of `steps` = N steps. Non-virtual: it checks what make() returns (N + 1 finite times, strictly
  /// increasing, t_0 = 0 and t_N = 1 exactly) and throws flowlab::Error naming the grid and the offending index.
  /// `path` is the trial's path, or null where there is none: grids defined by a noise level (edm, shift) map it
  /// to t through the path's schedule and refuse a null or non-affine path with flowlab::Error.
  std::vector<double> times(int64_t steps, const Path* path) const;

 protected:
  /// The grid itself: N + 1 times for N = `steps`, checked by times().
  virtual std::vector<double> make(int64_t steps, const Path* path) const = 0;

 private:
  std::string owner_;
};

/// The noise-to-signal ratio sigma_t / alpha_t of an affine path at t (+inf where alpha_t = 0): the EDM noise
/// level of x_t / alpha_t. Throws flowlab::Error, naming `owner`, when `path` is null or not affine.
FLOWLAB_API double noise_to_signal(const Path* path, double t, const std::string& owner);

/// The t in [0, 1] where the path's sigma_t / alpha_t equals `ratio` (> 0), by bisection to double precision; the
/// ratio must fall from +inf at t = 0 to 0 at t = 1 (every built-in affine path). 0 gives 1 and +inf gives 0.
FLOWLAB_API double time_at_noise_to_signal(const Path* path, double ratio, const std::string& owner);

namespace kinds {
/// The base class of the `time_grid` plugin kind (FLOWLAB_PLUGIN(time_grid, ...)).
using time_grid = TimeGrid;
}  // namespace kinds

}  // namespace flowlab
