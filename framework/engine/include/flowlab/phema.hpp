// Post-hoc EMA: EDM2's power-function EMA profiles, kept during training as snapshots, and the EMA of any length
// reconstructed from them after training (Karras et al., "Analyzing and Improving the Training Dynamics of
// Diffusion Models", CVPR 2024, arXiv 2312.02696; the equation numbers are those its reference code,
// NVlabs/edm2 training/phema.py, cites).
//
// A power-function EMA of exponent gamma averages the weights theta(tau) of steps tau <= t with the profile
// p_t(tau) = (gamma + 1) tau^gamma / t^(gamma + 1). Its width relative to t is
//   sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))                                         (eq. 123)
// and gamma is the largest real root of gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2) for s = sigma_rel
// (eq. 126, Algorithm 2). Training keeps it with ema <- beta ema + (1 - beta) theta after step t (1-based),
//   beta_t = (1 - 1/t)^(gamma + 1)                                                                       (eq. 127)
// which gives step s the weight (s^(gamma+1) - (s-1)^(gamma+1)) / t^(gamma+1): exactly p_t integrated over
// [s - 1, s]. The inner product of two profiles (t_a, gamma_a), (t_b, gamma_b) is
//   <p_a, p_b> = (gamma_a + 1)(gamma_b + 1) (t_a / t_b)^e / ((gamma_a + gamma_b + 1) max(t_a, t_b)),
//   e = gamma_b where t_a < t_b, else -gamma_a                                                            (eq. 151)
// and the EMA of (t, sigma) is approximated by the combination of the snapshots whose profile is its least-squares
// projection: solve A x = b with A_ij = <p_i, p_j>, b_i = <p_i, p_target>, then x /= sum(x) (Algorithm 3).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/serialize/archive.h>

#include "flowlab/config.hpp"
#include "flowlab/export.hpp"

namespace flowlab {

/// gamma of the profile of relative std `std` (eq. 126); std in (0, kPhemaMaxStd).
FLOWLAB_API double phema_exponent(double std);
/// sigma_rel of exponent `gamma` (eq. 123).
FLOWLAB_API double phema_std(double gamma);
/// beta of the update after step `t` >= 1 (eq. 127): 0 at t = 1, so the average starts at the first weights.
FLOWLAB_API double phema_beta(double std, int64_t t);
/// <p_a, p_b> (eq. 151).
FLOWLAB_API double phema_correlation(double t_a, double std_a, double t_b, double std_b);
/// The weight of step s (1..t) in the power-function EMA of (t, std): (s^(g+1) - (s-1)^(g+1)) / t^(g+1).
FLOWLAB_API double phema_step_weight(int64_t s, int64_t t, double std);

/// The combination of snapshots that reconstructs one EMA.
struct PhemaFit {
  std::vector<double> coefficients;  ///< per snapshot, summing to 1
  /// The snapshot equal to the target (same step, same std), whose weights are then returned as they are; npos
  /// when none is.
  size_t exact = std::numeric_limits<size_t>::max();
  /// sum over steps s of |sum_i x_i w_i(s) - w(s)|: how far the reconstructed profile is from the target's, in the
  /// discrete step weights (0 for an exact snapshot; it sums 2 at most).
  double profile_error = 0;
};

/// Algorithm 3 for snapshots taken at `steps` with `stds` (one entry per snapshot) and the target (t, std), solved
/// in double precision. Throws flowlab::Error when std is outside (0, kPhemaMaxStd) or the system is singular.
FLOWLAB_API PhemaFit phema_fit(const std::vector<int64_t>& steps, const std::vector<double>& stds, int64_t t,
                               double std);

/// The steps after which `snapshots` snapshots are taken in a stage of `steps` steps: round(steps i / K) for
/// i = 1..K, duplicates dropped; the last is always `steps`.
FLOWLAB_API std::vector<int64_t> phema_snapshot_steps(int64_t steps, int64_t snapshots);

/// One snapshot: the power-function EMA of std `std` after step `step`, as a flat tensor of the trained
/// parameters (FlatAdamW's order).
struct PhemaSnapshot {
  int64_t step = 0;
  double std = 0;
  at::Tensor flat;
};

/// The power-function EMAs of one training stage (train.phema), one per std, updated after every step, and their
/// snapshots at phema_snapshot_steps.
class FLOWLAB_API PowerEma {
 public:
  PowerEma() = default;
  /// Averages of `flat`'s size, dtype and device for `stds`, snapshotted after each of `snapshot_steps`.
  PowerEma(const at::Tensor& flat, std::vector<double> stds, std::vector<int64_t> snapshot_steps);
  bool defined() const { return !stds_.empty(); }
  /// After training step `t` (1-based) left the weights `flat`: every average moves by its beta_t, then the
  /// snapshots of step t are taken.
  void update(const at::Tensor& flat, int64_t t);
  const std::vector<PhemaSnapshot>& snapshots() const { return snapshots_; }
  /// The averages and the snapshots so far.
  void save(torch::serialize::OutputArchive& archive) const;
  /// What save() wrote; throws flowlab::Error when the checkpoint holds other stds or sizes.
  void load(torch::serialize::InputArchive& archive);

 private:
  std::vector<double> stds_, exponents_;
  std::vector<int64_t> snapshot_steps_;
  std::vector<at::Tensor> averages_;
  std::vector<PhemaSnapshot> snapshots_;
};

/// The flat weights of the EMA (t, std) reconstructed from `snapshots` (their steps and stds into phema_fit):
/// sum_i x_i snapshot_i in double, returned in the snapshots' dtype; the exact snapshot's tensor itself where there
/// is one. `fit`, when given, receives the fit.
FLOWLAB_API at::Tensor phema_reconstruct(const std::vector<PhemaSnapshot>& snapshots, int64_t t, double std,
                                         PhemaFit* fit = nullptr);

}  // namespace flowlab
