// The multistep engine (multistep.hpp): grid, history of evaluations, data-prediction schedule, one RK step.
#include "flowlab/multistep.hpp"

#include <fmt/format.h>

#include <cmath>

#include "flowlab/errors.hpp"
#include "flowlab/path.hpp"

namespace flowlab {

std::vector<double> solver_grid(const SampleOptions& opt, int64_t steps, int64_t min_steps, const std::string& owner) {
  if (!opt.grid.defined()) {
    const int64_t n = opt.steps.value_or(steps);
    if (n < min_steps)
      throw ParamError(owner, "steps", fmt::format("must be >= {} (the method's order), got {}", min_steps, n));
  }
  std::vector<double> grid = step_grid(opt, steps, owner);
  if (static_cast<int64_t>(grid.size()) - 1 < min_steps)
    throw ParamError(owner, "grid",
                     fmt::format("must have at least {} steps ({} times) for this method's order, got {}", min_steps,
                                 min_steps + 1, grid.size() - 1));
  return grid;
}

std::vector<double> lagrange_integral_weights(const std::vector<double>& nodes, double a, double b) {
  // In s = (t - a) / (b - a): expand each basis polynomial in powers of s, integrate over [0, 1], scale by b - a.
  const double h = b - a;
  std::vector<double> s(nodes.size()), w(nodes.size());
  for (size_t j = 0; j < nodes.size(); ++j) s[j] = (nodes[j] - a) / h;
  for (size_t j = 0; j < nodes.size(); ++j) {
    std::vector<double> c = {1.0};
    for (size_t m = 0; m < nodes.size(); ++m) {
      if (m == j) continue;
      const double d = s[j] - s[m];
      std::vector<double> next(c.size() + 1, 0.0);
      for (size_t p = 0; p < c.size(); ++p) next[p + 1] += c[p] / d, next[p] -= s[m] * c[p] / d;
      c.swap(next);
    }
    double integral = 0;
    for (size_t p = 0; p < c.size(); ++p) integral += c[p] / double(p + 1);
    w[j] = h * integral;
  }
  return w;
}

Tensor runge_kutta_step(const ButcherTableau& tb, Field& field, const Tensor& x, const Tensor& k0, double t, double h) {
  const size_t s = tb.b.size();
  std::vector<Tensor> k(s);
  k[0] = k0;
  auto combine = [&](const std::vector<double>& w, size_t n) {
    Tensor out = x.clone();
    for (size_t j = 0; j < n; ++j)
      if (w[j] != 0.0) out.add_(k[j], h * w[j]);
    return out;
  };
  for (size_t st = 1; st < s; ++st) k[st] = field(combine(tb.a[st], st), t + tb.c[st] * h);
  return combine(tb.b, s);
}

DataSchedule::DataSchedule(const SampleOptions& opt, const std::vector<double>& times, const std::string& owner) {
  if (!opt.path)
    throw SolverError(
        fmt::format("{}: needs the path the field was trained on (SampleOptions::path) to turn velocities "
                    "into x1 predictions, and none was given",
                    owner));
  if (!opt.path->affine())
    throw SolverError(fmt::format("{}: the path is not affine (x_t = alpha_t x1 + sigma_t x0), and x1 predictions need "
                                  "its schedule: use a Runge-Kutta solver",
                                  owner));
  const Schedule s = opt.path->schedule(at::tensor(times, at::TensorOptions().dtype(at::kDouble)));
  const auto value = [](const Tensor& v, size_t i) { return v[static_cast<int64_t>(i)].item<double>(); };
  const size_t n = times.size();
  for (size_t i = 0; i < n; ++i) {
    const double a = value(s.alpha, i), sg = value(s.sigma, i), da = value(s.d_alpha, i), ds = value(s.d_sigma, i);
    const double det = a * ds - sg * da;
    const bool last = i + 1 == n;
    if (!std::isfinite(a) || !std::isfinite(sg) || a < 0 || sg < 0 ||
        (!last && (!std::isfinite(da) || !std::isfinite(ds) || !std::isfinite(det) || det == 0)))
      throw SolverError(
          fmt::format("{}: the path's schedule is not usable at t = {} (alpha = {}, sigma = {}, d_alpha = "
                      "{}, d_sigma = {}): start and end the grid inside the path's domain",
                      owner, times[i], a, sg, da, ds));
    alpha.push_back(a), sigma.push_back(sg), lambda.push_back(std::log(a) - std::log(sg));
    if (!last) to_x1_x.push_back(ds / det), to_x1_v.push_back(-sg / det);
    if (i > 0 && !(lambda[i] > lambda[i - 1]))
      throw SolverError(fmt::format("{}: log(alpha_t / sigma_t) of the path must increase along the grid, but it is {} "
                                    "at t = {} and {} at t = {}",
                                    owner, lambda[i - 1], times[i - 1], lambda[i], times[i]));
  }
}

Tensor DataSchedule::x1(size_t i, const Tensor& x, const Tensor& v) const {
  return (x * to_x1_x[i]).add_(v, to_x1_v[i]);
}

MultistepSolver::MultistepSolver(int64_t steps, int64_t min_steps, const std::string& owner)
    : Solver(owner), steps_(steps), min_steps_(min_steps) {
  if (steps_ < min_steps_)
    throw ParamError(owner, "steps", fmt::format("must be >= {} (the method's order), got {}", min_steps_, steps_));
}

Tensor MultistepSolver::output(const Run&, size_t, const Tensor&, const Tensor& v) const { return v; }

Tensor MultistepSolver::correct(const Run&, size_t, const Tensor& x) const { return x; }

void MultistepSolver::integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const {
  Run run;
  run.t = solver_grid(opt, steps_, min_steps_, owner());
  run.opt = &opt;
  prepare(run);
  const size_t n = run.t.size() - 1;
  std::vector<Tensor> states;
  Tensor x = x0;
  for (size_t i = 0; i < n; ++i) {
    field.set_step(static_cast<int64_t>(i));
    run.outputs.push_back(output(run, i, x, field(x, run.t[i])));
    x = correct(run, i, x);
    if (opt.return_trajectory) states.push_back(x);
    opt.report(run.t[i], x);
    Tensor next = advance(run, i, x, field);
    run.last_x = x;
    x = next;
    if (i >= 3) run.outputs[i - 3] = Tensor();
  }
  if (opt.return_trajectory) states.push_back(x);
  opt.report(run.t[n], x);
  out.x = x;
  out.accepted_steps = static_cast<int64_t>(n);
  if (opt.return_trajectory) {
    out.trajectory = at::stack(states, 1);
    out.times = at::tensor(run.t, at::TensorOptions().dtype(at::kDouble));
  }
}

}  // namespace flowlab
