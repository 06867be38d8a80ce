// The schedule transform of schedule_transform.hpp: the matched time and scale on the host, the field on the device.
#include "flowlab/schedule_transform.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "flowlab/errors.hpp"
#include "flowlab/time_grid.hpp"

namespace flowlab {
namespace {

struct Point {
  double alpha, sigma, d_alpha, d_sigma;
};

// The schedule at t (strictly inside (0, 1): r is clamped below, and the matched t of an interior r is interior).
Point at_time(const Path& p, double t) {
  const Schedule s = p.schedule(at::full({1}, t, at::kDouble));
  return {s.alpha.item<double>(), s.sigma.item<double>(), s.d_alpha.item<double>(), s.d_sigma.item<double>()};
}

}  // namespace

VelocityField schedule_transformed(VelocityField u, std::shared_ptr<const Path> trained,
                                   std::shared_ptr<const Path> target, const std::string& what) {
  if (!trained->affine() || !target->affine())
    throw Error(
        fmt::format("{}: the schedule transform needs affine paths (x_t = alpha_t x1 + sigma_t x0); the {} path is not",
                    what, trained->affine() ? "target" : "trained"));
  return [u = std::move(u), trained, target, what](const Tensor& x, const Tensor& r_batch) {
    // Solvers pass one time broadcast to [B]. The ends are read 1e-9 inside: where a path's ratio has a zero
    // derivative there (polynomial with n > 1 at t = 0), t_r' is infinite while u vanishes, and only the limit exists.
    const double r = std::clamp(r_batch.reshape(-1)[0].item<double>(), 1e-9, 1 - 1e-9);
    const Point b = at_time(*target, r);
    // The trained time with the same ratio sigma / alpha (0 at r = 0 and 1 at r = 1 through the +inf / 0 ratios).
    const double ratio = b.alpha <= 0 ? INFINITY : b.sigma / b.alpha;
    const double t = time_at_noise_to_signal(trained.get(), ratio, what);
    const Point a = at_time(*trained, t);
    const double s = (b.alpha + b.sigma) / (a.alpha + a.sigma);
    const double dt =
        (b.d_alpha * b.sigma - b.alpha * b.d_sigma) / ((a.d_alpha * a.sigma - a.alpha * a.d_sigma) * s * s);
    const double ds =
        ((b.d_alpha + b.d_sigma) * (a.alpha + a.sigma) - (b.alpha + b.sigma) * (a.d_alpha + a.d_sigma) * dt) /
        ((a.alpha + a.sigma) * (a.alpha + a.sigma));
    const Tensor tt =
        (x.device().is_cpu() ? at::scalar_tensor(t, x.options()) : at::full({}, t, x.options())).expand({x.size(0)});
    return x * (ds / s) + u(x / s, tt) * (s * dt);
  };
}

}  // namespace flowlab
