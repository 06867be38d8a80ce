// Probability paths between noise x0 (t = 0) and data x1 (t = 1): x_t, the target velocity u_t and,
// for affine paths, the schedule and the conversions between velocity, x1- and eps-prediction.
#pragma once

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// One draw from a path (Meta flow_matching's PathSample): the endpoints, the times and x_t, u_t.
struct PathSample {
  ///@{
  Tensor x0, x1, t;  ///< noise [B, ...], data [B, ...], times [B]
  ///@}
  ///@{
  Tensor xt, ut;  ///< point on the path and its target velocity d/dt x_t, both [B, ...]
  ///@}
};

/// An affine schedule x_t = alpha_t * x1 + sigma_t * x0, with d/dt of both. Each tensor is shaped like t.
struct Schedule {
  ///@{
  Tensor alpha, sigma, d_alpha, d_sigma;  ///< alpha_t, sigma_t and their derivatives d/dt
  ///@}
};

/// The times a path is defined on: [0, 1] with either end possibly open (where alpha, sigma or their derivatives
/// are singular, as vp at t = 1 or polynomial with n < 1 at t = 0).
struct TimeDomain {
  ///@{
  bool open_at_0 = false, open_at_1 = false;  ///< whether t = 0, t = 1 is excluded
  ///@}
};

/// How far inside an open end the engine keeps training times: t is clamped to [kTimeMargin, 1 - kTimeMargin] on
/// the open side(s). 1e-5 is well above float32's spacing near 1 (6e-8), so 1 - kTimeMargin < 1 in float32.
constexpr double kTimeMargin = 1e-5;

/// A probability path from noise x0 (t = 0) to data x1 (t = 1): the `path` plugin kind. It gives the point x_t
/// and the target velocity u_t the network is trained to match.
class FLOWLAB_API Path : public Plugin {
 public:
  /// Where sample() and schedule() are finite; the engine clamps the time sampler's draws into it.
  virtual TimeDomain domain() const { return {}; }
  /// t clamped into domain(): open ends are replaced by kTimeMargin and 1 - kTimeMargin.
  Tensor clamp_to_domain(const Tensor& t) const;
  /// x_t and u_t at times t [B]. `eps` is the extra noise of stochastic paths (the bridge), shaped like x0;
  /// it is drawn from N(0, I) when undefined, and ignored by deterministic paths.
  virtual PathSample sample(const Tensor& x0, const Tensor& x1, const Tensor& t,
                            const Tensor& eps = Tensor()) const = 0;
  /// True when x_t = alpha_t x1 + sigma_t x0 exactly, so schedule() and the conversions below exist.
  virtual bool affine() const { return false; }
  /// The schedule at t; throws flowlab::Error for a non-affine path.
  virtual Schedule schedule(const Tensor& t) const;

  // Conversions for affine paths, derived once from the schedule (solve the 2x2 system
  //   [alpha sigma; d_alpha d_sigma] [x1; x0] = [x_t; v]). `t` is [B]; the rest are [B, ...].
  /// The data prediction x1 from the velocity v at (x_t, t) (affine paths).
  Tensor velocity_to_x1(const Tensor& xt, const Tensor& v, const Tensor& t) const;
  /// The noise prediction x0 (eps) from the velocity v at (x_t, t) (affine paths).
  Tensor velocity_to_eps(const Tensor& xt, const Tensor& v, const Tensor& t) const;
  /// The velocity from a data prediction x1 at (x_t, t) (affine paths).
  Tensor x1_to_velocity(const Tensor& xt, const Tensor& x1, const Tensor& t) const;
  /// The velocity from a noise prediction eps at (x_t, t) (affine paths).
  Tensor eps_to_velocity(const Tensor& xt, const Tensor& eps, const Tensor& t) const;
  /// Signal-to-noise ratio alpha^2 / sigma^2 at t (affine paths).
  Tensor snr(const Tensor& t) const;
};

/// Base for affine paths: implement schedule(); sample() follows from it.
class FLOWLAB_API AffinePath : public Path {
 public:
  PathSample sample(const Tensor& x0, const Tensor& x1, const Tensor& t, const Tensor& eps = Tensor()) const override;
  bool affine() const override { return true; }
  Schedule schedule(const Tensor& t) const override = 0;
};

namespace kinds {
/// The base class of the `path` plugin kind (FLOWLAB_PLUGIN(path, ...)).
using path = Path;
}  // namespace kinds

}  // namespace flowlab
