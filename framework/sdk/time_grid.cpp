// TimeGrid::times (the checks every grid passes) and the noise-level map of affine paths that edm and shift use.
#include "flowlab/time_grid.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "flowlab/errors.hpp"
#include "flowlab/path.hpp"

namespace flowlab {

std::vector<double> TimeGrid::times(int64_t steps, const Path* path) const {
  if (steps < 1) throw ParamError(owner_, "steps", fmt::format("must be >= 1, got {}", steps));
  std::vector<double> t = make(steps, path);
  if (static_cast<int64_t>(t.size()) != steps + 1)
    throw Error(fmt::format("{}: gave {} times for {} steps (needs {})", owner_, t.size(), steps, steps + 1));
  for (size_t i = 0; i < t.size(); ++i)
    if (!std::isfinite(t[i])) throw Error(fmt::format("{}: time {} is {}", owner_, i, t[i]));
  if (t.front() != 0.0 || t.back() != 1.0)
    throw Error(fmt::format("{}: the times must run from 0 to 1 exactly, got {} to {}", owner_, t.front(), t.back()));
  for (size_t i = 1; i < t.size(); ++i)
    if (!(t[i] > t[i - 1]))
      throw Error(fmt::format("{}: the times must increase strictly, but time {} = {} <= time {} = {}", owner_, i, t[i],
                              i - 1, t[i - 1]));
  return t;
}

double noise_to_signal(const Path* path, double t, const std::string& owner) {
  if (path == nullptr || !path->affine())
    throw Error(
        fmt::format("{}: maps noise levels sigma_t / alpha_t to t, which needs an affine path (x_t = alpha_t x1 + "
                    "sigma_t x0), and {}; the grids uniform, cosine, logit_normal and list need no path",
                    owner, path == nullptr ? "none was given" : "this path is not affine"));
  const Schedule s = path->schedule(at::full({1}, t, at::kDouble));
  const double alpha = s.alpha.item<double>(), sigma = s.sigma.item<double>();
  if (alpha <= 0) return std::numeric_limits<double>::infinity();
  return sigma / alpha;
}

double time_at_noise_to_signal(const Path* path, double ratio, const std::string& owner) {
  if (!(ratio >= 0)) throw Error(fmt::format("{}: noise level {} must be >= 0", owner, ratio));
  noise_to_signal(path, 0.5, owner);  // the path checks, once
  if (ratio == 0) return 1.0;
  if (std::isinf(ratio)) return 0.0;
  // sigma/alpha falls from +inf (t = 0) to 0 (t = 1): bisection on (0, 1) until the bracket stops shrinking.
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (noise_to_signal(path, mid, owner) > ratio ? lo : hi) = mid;
  }
  const double t = 0.5 * (lo + hi);  // strictly inside (0, 1), where the ratio is finite and positive
  return t >= 1.0 ? lo : t <= 0.0 ? hi : t;
}

}  // namespace flowlab
