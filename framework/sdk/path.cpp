// Affine paths: sampling from the schedule, and velocity <-> x1 <-> eps conversions (Meta flow_matching's
// path/affine.py, derived from x_t = alpha x1 + sigma x0 and v = d_alpha x1 + d_sigma x0).
#include "flowlab/path.hpp"

#include <fmt/format.h>

namespace flowlab {

Schedule Path::schedule(const Tensor&) const {
  throw Error("this path is not affine: it has no (alpha, sigma) schedule and no velocity/x1/eps conversions");
}

Tensor Path::velocity_to_x1(const Tensor& xt, const Tensor& v, const Tensor& t) const {
  const Schedule s = schedule(t);
  const Tensor det = s.alpha * s.d_sigma - s.sigma * s.d_alpha;
  return (expand_like(s.d_sigma, xt) * xt - expand_like(s.sigma, xt) * v) / expand_like(det, xt);
}

Tensor Path::velocity_to_eps(const Tensor& xt, const Tensor& v, const Tensor& t) const {
  const Schedule s = schedule(t);
  const Tensor det = s.alpha * s.d_sigma - s.sigma * s.d_alpha;
  return (expand_like(s.alpha, xt) * v - expand_like(s.d_alpha, xt) * xt) / expand_like(det, xt);
}

Tensor Path::x1_to_velocity(const Tensor& xt, const Tensor& x1, const Tensor& t) const {
  const Schedule s = schedule(t);
  // x0 = (x_t - alpha x1) / sigma
  const Tensor x0 = (xt - expand_like(s.alpha, xt) * x1) / expand_like(s.sigma, xt);
  return expand_like(s.d_alpha, xt) * x1 + expand_like(s.d_sigma, xt) * x0;
}

Tensor Path::eps_to_velocity(const Tensor& xt, const Tensor& eps, const Tensor& t) const {
  const Schedule s = schedule(t);
  // x1 = (x_t - sigma x0) / alpha
  const Tensor x1 = (xt - expand_like(s.sigma, xt) * eps) / expand_like(s.alpha, xt);
  return expand_like(s.d_alpha, xt) * x1 + expand_like(s.d_sigma, xt) * eps;
}

Tensor Path::snr(const Tensor& t) const {
  const Schedule s = schedule(t);
  return (s.alpha * s.alpha) / (s.sigma * s.sigma);
}

PathSample AffinePath::sample(const Tensor& x0, const Tensor& x1, const Tensor& t, const Tensor&) const {
  const Schedule s = schedule(t);
  PathSample out{x0, x1, t, Tensor(), Tensor()};
  out.xt = expand_like(s.alpha, x1) * x1 + expand_like(s.sigma, x0) * x0;
  out.ut = expand_like(s.d_alpha, x1) * x1 + expand_like(s.d_sigma, x0) * x0;
  return out;
}

Tensor Path::clamp_to_domain(const Tensor& t) const {
  const TimeDomain d = domain();
  if (!d.open_at_0 && !d.open_at_1) return t;
  return t.clamp(d.open_at_0 ? kTimeMargin : 0.0, d.open_at_1 ? 1.0 - kTimeMargin : 1.0);
}

}  // namespace flowlab
