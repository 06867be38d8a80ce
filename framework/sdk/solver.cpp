// The counted velocity field and Solver::sample, the one place where NFE is measured.
#include "flowlab/solver.hpp"

#include <fmt/format.h>

#include "flowlab/errors.hpp"

namespace flowlab {

Field::Field(const VelocityField& v, std::string solver) : v_(v), solver_(std::move(solver)) {}

Tensor Field::operator()(const Tensor& x, double t) {
  ++nfe_;
  // One value viewed as [B]: architectures that see it (shared_time) embed t once instead of B times.
  // On a GPU, filled in place (scalar_tensor would copy from the host, which a CUDA graph capture refuses).
  const Tensor tt =
      (x.device().is_cpu() ? at::scalar_tensor(t, x.options()) : at::full({}, t, x.options())).expand({x.size(0)});
  Tensor v = v_(x, tt);
  if (!v.defined() || v.sizes() != x.sizes())
    throw SolverError(fmt::format("{}: velocity field returned shape {} for x of shape {} at step {} (t = {})", solver_,
                                  v.defined() ? shape_string(v.sizes()) : "<undefined>", shape_string(x.sizes()), step_,
                                  t));
  if (check_finite_ && !at::isfinite(v).all().item<bool>())
    throw SolverError(fmt::format("{}: velocity field returned NaN or Inf at step {} (t = {}), evaluation {}", solver_,
                                  step_, t, nfe_));
  return v;
}

Tensor Field::jump(const Tensor& x, double t, double d) {
  if (!step_field_ || !*step_field_)
    throw SolverError(fmt::format("{}: the model has no step input (it was trained with objective/flow_matching or "
                                  "another objective without one); few-step sampling needs objective/meanflow or "
                                  "objective/shortcut",
                                  solver_));
  ++nfe_;
  auto broadcast = [&](double value) {
    return (x.device().is_cpu() ? at::scalar_tensor(value, x.options()) : at::full({}, value, x.options()))
        .expand({x.size(0)});
  };
  Tensor u = (*step_field_)(x, broadcast(t), broadcast(d));
  if (!u.defined() || u.sizes() != x.sizes())
    throw SolverError(fmt::format("{}: step field returned shape {} for x of shape {} at step {} (t = {}, d = {})",
                                  solver_, u.defined() ? shape_string(u.sizes()) : "<undefined>",
                                  shape_string(x.sizes()), step_, t, d));
  if (check_finite_ && !at::isfinite(u).all().item<bool>())
    throw SolverError(fmt::format("{}: step field returned NaN or Inf at step {} (t = {}, d = {}), evaluation {}",
                                  solver_, step_, t, d, nfe_));
  return u;
}

SampleResult Solver::sample(const Tensor& x0, const VelocityField& v, const SampleOptions& opt) const {
  if (!x0.defined() || x0.dim() < 1 || x0.size(0) < 1)
    throw SolverError(fmt::format("{}: x0 must be a tensor [B, ...] with B >= 1", owner_));
  if (!(opt.t1 > opt.t0))
    throw SolverError(fmt::format("{}: t1 ({}) must be greater than t0 ({})", owner_, opt.t1, opt.t0));
  Field field(v, owner_);
  field.set_check_finite(opt.check_finite);
  if (opt.step_field) field.set_step_field(&opt.step_field);
  SampleResult out;
  integrate(x0, field, opt, out);
  out.nfe = field.nfe();
  return out;
}

std::vector<double> step_grid(const SampleOptions& opt, int64_t steps, const std::string& owner) {
  std::vector<double> grid;
  if (opt.grid.defined()) {
    const Tensor g = opt.grid.to(at::kCPU, at::kDouble).contiguous();
    if (g.dim() != 1 || g.numel() < 2) throw ParamError(owner, "grid", "must be a 1-D tensor of at least 2 times");
    grid.assign(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
    for (size_t i = 1; i < grid.size(); ++i)
      if (!(grid[i] > grid[i - 1]))
        throw ParamError(
            owner, "grid",
            fmt::format("must increase strictly, but grid[{}] = {} <= grid[{}] = {}", i, grid[i], i - 1, grid[i - 1]));
    return grid;
  }
  const int64_t n = opt.steps.value_or(steps);
  if (n <= 0) throw ParamError(owner, "steps", fmt::format("must be > 0, got {}", n));
  grid.resize(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i <= n; ++i) grid[static_cast<size_t>(i)] = opt.t0 + (opt.t1 - opt.t0) * double(i) / double(n);
  grid.back() = opt.t1;
  return grid;
}

}  // namespace flowlab
