// Sampling a model trained on one affine path as if it had been trained on another (eval.as_path), with no
// retraining: Meta flow_matching's ScheduleTransformedModel (Lipman et al. 2024, "Flow Matching Guide and Code",
// arXiv 2412.06264, sec. 4.8, eqs. 4.70-4.73), in flowlab's time (noise at 0).
//
// The trained path has x_t = alpha_t x1 + sigma_t x0, the target path alpha_bar_r, sigma_bar_r. For each target time
// r, t_r is the trained time with the same signal-to-noise ratio (alpha_t / sigma_t = alpha_bar_r / sigma_bar_r) and
// s_r = sigma_bar_r / sigma_t = alpha_bar_r / alpha_t = (alpha_bar_r + sigma_bar_r) / (alpha_t + sigma_t) (the last
// form is finite at both ends). Then x_bar_r = s_r x_{t_r} follows the target path, and its velocity is
//   u_bar(x_bar, r) = (s_r' / s_r) x_bar + s_r t_r' u(x_bar / s_r, t_r),
// with t_r' = (alpha_bar' sigma_bar - alpha_bar sigma_bar') / ((alpha' sigma - alpha sigma') s_r^2) (the derivative
// of the matched ratio, free of the 0/0 at the ends) and s_r' from the sum form. The endpoints agree: s_0 = s_1 = 1
// for paths with alpha_0 = 0, sigma_0 = 1 and alpha_1 = 1, sigma_1 = 0, so the same noise gives the same samples up
// to the solver's error (tested with the exact field of a Gaussian-to-Gaussian flow). The field is read at r clamped
// to [1e-9, 1 - 1e-9]: at an end where a path's ratio has a zero derivative (polynomial, n > 1, at t = 0) t_r' is
// infinite while u vanishes, and only the limit is finite.
#pragma once

#include <memory>

#include "flowlab/path.hpp"
#include "flowlab/solver.hpp"

namespace flowlab {

/// The field `u` of a model trained on `trained`, as the velocity of `target` (both affine: Error otherwise,
/// naming `what`, e.g. "eval.as_path").
FLOWLAB_API VelocityField schedule_transformed(VelocityField u, std::shared_ptr<const Path> trained,
                                               std::shared_ptr<const Path> target, const std::string& what);

}  // namespace flowlab
