// The explicit Runge-Kutta engine behind every built-in solver: fixed grids and embedded-pair error control.
#include "flowlab/runge_kutta.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "flowlab/errors.hpp"

namespace flowlab {
namespace {

// x + h * sum_j w_j k_j, skipping zero weights (so Euler costs one add).
Tensor combine(const Tensor& x, double h, const std::vector<double>& w, const std::vector<Tensor>& k, size_t n) {
  Tensor out;
  for (size_t j = 0; j < n; ++j) {
    if (w[j] == 0.0) continue;
    out = out.defined() ? out.add_(k[j], h * w[j]) : x.add(k[j], h * w[j]);
  }
  return out.defined() ? out : x.clone();
}

// Root mean square over every element, as SciPy's RK45 and torchdiffeq do.
double rms(const Tensor& z) { return std::sqrt(z.to(at::kDouble).pow(2).mean().item<double>()); }

void check_tableau(const ButcherTableau& tb, const std::string& owner) {
  const size_t s = tb.b.size();
  if (s == 0 || tb.c.size() != s || tb.a.size() != s)
    throw Error(fmt::format("{}: Butcher tableau needs |c| = |a| = |b| > 0", owner));
  for (size_t i = 0; i < s; ++i)
    if (tb.a[i].size() != i) throw Error(fmt::format("{}: tableau row a[{}] must have {} entries", owner, i, i));
  if (!tb.e.empty() && tb.e.size() != s) throw Error(fmt::format("{}: error weights e need {} entries", owner, s));
}

}  // namespace

FixedStepRungeKutta::FixedStepRungeKutta(ButcherTableau tableau, int64_t steps, const std::string& owner)
    : Solver(owner), tableau_(std::move(tableau)), steps_(steps) {
  check_tableau(tableau_, owner);
  if (steps_ <= 0) throw ParamError(owner, "steps", fmt::format("must be > 0, got {}", steps_));
}

void FixedStepRungeKutta::integrate(const Tensor& x0, Field& field, const SampleOptions& opt,
                                    SampleResult& out) const {
  const std::vector<double> grid = step_grid(opt, steps_, owner());
  const size_t s = tableau_.b.size();
  std::vector<Tensor> k(s);
  std::vector<Tensor> states;
  if (opt.return_trajectory) states.push_back(x0);
  opt.report(grid[0], x0);
  Tensor x = x0;
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    const double t = grid[i], h = grid[i + 1] - grid[i];
    field.set_step(static_cast<int64_t>(i));
    k[0] = field(x, t);
    for (size_t st = 1; st < s; ++st) k[st] = field(combine(x, h, tableau_.a[st], k, st), t + tableau_.c[st] * h);
    x = combine(x, h, tableau_.b, k, s);
    if (opt.return_trajectory) states.push_back(x);
    opt.report(grid[i + 1], x);
  }
  out.x = x;
  out.accepted_steps = static_cast<int64_t>(grid.size()) - 1;
  if (opt.return_trajectory) {
    out.trajectory = at::stack(states, 1);
    out.times = at::tensor(grid, at::TensorOptions().dtype(at::kDouble));
  }
}

AdaptiveRungeKutta::AdaptiveRungeKutta(ButcherTableau tableau, AdaptiveOptions options, const std::string& owner)
    : Solver(owner), tableau_(std::move(tableau)), options_(options) {
  check_tableau(tableau_, owner);
  if (tableau_.e.empty() || tableau_.error_order <= 0)
    throw Error(fmt::format("{}: an adaptive method needs error weights and an error order", owner));
  const auto& o = options_;
  if (!(o.rtol > 0)) throw ParamError(owner, "rtol", fmt::format("must be > 0, got {}", o.rtol));
  if (!(o.atol >= 0)) throw ParamError(owner, "atol", fmt::format("must be >= 0, got {}", o.atol));
  if (!(o.safety > 0 && o.safety <= 1)) throw ParamError(owner, "safety", fmt::format("must be in (0, 1], got {}", o.safety));
  if (!(o.min_factor > 0 && o.min_factor < 1))
    throw ParamError(owner, "min_factor", fmt::format("must be in (0, 1), got {}", o.min_factor));
  if (!(o.max_factor > 1)) throw ParamError(owner, "max_factor", fmt::format("must be > 1, got {}", o.max_factor));
  if (o.max_steps <= 0) throw ParamError(owner, "max_steps", fmt::format("must be > 0, got {}", o.max_steps));
  if (!(o.first_step >= 0)) throw ParamError(owner, "first_step", fmt::format("must be >= 0, got {}", o.first_step));
}

// Hairer, Norsett & Wanner, Solving ODEs I, II.4 (the same algorithm as SciPy's select_initial_step).
double AdaptiveRungeKutta::initial_step(const Tensor& x0, const Tensor& f0, Field& field, double t0,
                                        double span) const {
  const Tensor scale = options_.atol + x0.abs() * options_.rtol;
  const double d0 = rms(x0 / scale), d1 = rms(f0 / scale);
  const double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  const Tensor f1 = field(x0 + h0 * f0, t0 + h0);
  const double d2 = rms((f1 - f0) / scale) / h0;
  const double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? std::max(1e-6, h0 * 1e-3)
                                                 : std::pow(0.01 / std::max(d1, d2), 1.0 / (tableau_.error_order + 1));
  return std::min({100 * h0, h1, span});
}

void AdaptiveRungeKutta::integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const {
  const auto& o = options_;
  const size_t s = tableau_.b.size();
  const double exponent = -1.0 / (tableau_.error_order + 1);
  double t = opt.t0;
  Tensor x = x0;
  field.set_step(0);
  Tensor f = field(x, t);
  double h_abs = o.first_step > 0 ? o.first_step : initial_step(x, f, field, t, opt.t1 - opt.t0);
  std::vector<Tensor> k(s);
  std::vector<Tensor> states;
  std::vector<double> times;
  if (opt.return_trajectory) states.push_back(x0), times.push_back(t);
  opt.report(t, x0);
  int64_t attempts = 0;
  while (t < opt.t1) {
    const double min_step = 10 * std::abs(std::nextafter(t, std::numeric_limits<double>::infinity()) - t);
    bool rejected_before = false;
    for (;;) {
      if (attempts >= o.max_steps)
        throw SolverError(fmt::format("{}: exceeded max_steps = {} at step {} (t = {})", owner(), o.max_steps,
                                      out.accepted_steps, t));
      if (h_abs < min_step)
        throw SolverError(fmt::format("{}: step size {} underflowed at step {} (t = {})", owner(), h_abs,
                                      out.accepted_steps, t));
      ++attempts;
      double t_new = t + h_abs;
      if (t_new > opt.t1) t_new = opt.t1;
      const double h = t_new - t;
      h_abs = std::abs(h);
      field.set_step(out.accepted_steps);
      k[0] = f;
      Tensor x_new;
      for (size_t st = 1; st < s; ++st) {
        Tensor xs = combine(x, h, tableau_.a[st], k, st);
        if (tableau_.fsal && st + 1 == s) x_new = xs;
        k[st] = field(xs, t + tableau_.c[st] * h);
      }
      if (!x_new.defined()) x_new = combine(x, h, tableau_.b, k, s);
      const Tensor err = combine(at::zeros_like(x), h, tableau_.e, k, s);
      const Tensor scale = o.atol + at::maximum(x.abs(), x_new.abs()) * o.rtol;
      const double err_norm = rms(err / scale);
      if (err_norm < 1) {
        double factor = err_norm == 0 ? o.max_factor : std::min(o.max_factor, o.safety * std::pow(err_norm, exponent));
        if (rejected_before) factor = std::min(1.0, factor);
        h_abs *= factor;
        t = t_new;
        x = x_new;
        f = tableau_.fsal ? k[s - 1] : (t < opt.t1 ? field(x, t) : Tensor());
        ++out.accepted_steps;
        if (opt.return_trajectory) states.push_back(x), times.push_back(t);
        opt.report(t, x);
        break;
      }
      if (!std::isfinite(err_norm))
        throw SolverError(fmt::format("{}: error estimate is not finite at step {} (t = {})", owner(),
                                      out.accepted_steps, t));
      h_abs *= std::max(o.min_factor, o.safety * std::pow(err_norm, exponent));
      rejected_before = true;
      ++out.rejected_steps;
    }
  }
  out.x = x;
  if (opt.return_trajectory) {
    out.trajectory = at::stack(states, 1);
    out.times = at::tensor(times, at::TensorOptions().dtype(at::kDouble));
  }
}

}  // namespace flowlab
