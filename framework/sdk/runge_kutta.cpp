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

void FixedStepRungeKutta::integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const {
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

AdaptiveOptions::AdaptiveOptions(const Params& p)
    : rtol(p.real("rtol")),
      atol(p.real("atol")),
      safety(p.real("safety")),
      min_factor(p.real("min_factor")),
      max_factor(p.real("max_factor")),
      max_steps(p.integer("max_steps")),
      first_step(p.real("first_step")),
      max_nfe(p.integer("max_nfe")) {
  const std::string& c = p.str("controller");
  if (c == "scipy") controller = Controller::scipy;
  else if (c == "torchdiffeq") controller = Controller::torchdiffeq;
  else throw ParamError(p.owner(), "controller", fmt::format("unknown value '{}' (valid: scipy, torchdiffeq)", c));
}

AdaptiveRungeKutta::AdaptiveRungeKutta(ButcherTableau tableau, AdaptiveOptions options, const std::string& owner)
    : Solver(owner), tableau_(std::move(tableau)), options_(options) {
  check_tableau(tableau_, owner);
  if (tableau_.e.empty() || tableau_.error_order <= 0)
    throw Error(fmt::format("{}: an adaptive method needs error weights and an error order", owner));
  if (!tableau_.e_aux.empty() && tableau_.e_aux.size() != tableau_.b.size())
    throw Error(fmt::format("{}: error weights e_aux need {} entries", owner, tableau_.b.size()));
  if (!tableau_.e_torchdiffeq.empty() && tableau_.e_torchdiffeq.size() != tableau_.b.size())
    throw Error(fmt::format("{}: error weights e_torchdiffeq need {} entries", owner, tableau_.b.size()));
  if (!tableau_.mid.empty() && tableau_.mid.size() != tableau_.b.size())
    throw Error(fmt::format("{}: midpoint weights need {} entries", owner, tableau_.b.size()));
  const auto& o = options_;
  if (!(o.rtol > 0)) throw ParamError(owner, "rtol", fmt::format("must be > 0, got {}", o.rtol));
  if (!(o.atol >= 0)) throw ParamError(owner, "atol", fmt::format("must be >= 0, got {}", o.atol));
  if (!(o.safety > 0 && o.safety <= 1))
    throw ParamError(owner, "safety", fmt::format("must be in (0, 1], got {}", o.safety));
  if (!(o.min_factor > 0 && o.min_factor < 1))
    throw ParamError(owner, "min_factor", fmt::format("must be in (0, 1), got {}", o.min_factor));
  if (!(o.max_factor > 1)) throw ParamError(owner, "max_factor", fmt::format("must be > 1, got {}", o.max_factor));
  if (o.max_steps <= 0) throw ParamError(owner, "max_steps", fmt::format("must be > 0, got {}", o.max_steps));
  if (!(o.first_step >= 0)) throw ParamError(owner, "first_step", fmt::format("must be >= 0, got {}", o.first_step));
  if (o.max_nfe < 0) throw ParamError(owner, "max_nfe", fmt::format("must be >= 0 (0: no cap), got {}", o.max_nfe));
  if (o.controller == Controller::torchdiffeq && tableau_.mid.empty())
    throw ParamError(owner, "controller",
                     "torchdiffeq interpolates to t1 through the step's midpoint, and this tableau has no midpoint "
                     "weights (valid here: scipy)");
}

// Hairer, Norsett & Wanner, Solving ODEs I, II.4 (the same algorithm as SciPy's select_initial_step and
// torchdiffeq's _select_initial_step, which does not cap it at the span: pass span = inf).
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

double AdaptiveRungeKutta::error_norm(const std::vector<Tensor>& k, double h, const Tensor& x,
                                      const Tensor& x_new) const {
  const size_t s = tableau_.b.size();
  const Tensor scale = options_.atol + at::maximum(x.abs(), x_new.abs()) * options_.rtol;
  const bool peer = options_.controller == Controller::torchdiffeq && !tableau_.e_torchdiffeq.empty();
  if (tableau_.e_aux.empty())
    return rms(combine(at::zeros_like(x), h, peer ? tableau_.e_torchdiffeq : tableau_.e, k, s) / scale);
  // SciPy's DOP853._estimate_error_norm.
  const double e5 =
      (combine(at::zeros_like(x), 1.0, tableau_.e, k, s) / scale).to(at::kDouble).pow(2).sum().item<double>();
  const double e3 =
      (combine(at::zeros_like(x), 1.0, tableau_.e_aux, k, s) / scale).to(at::kDouble).pow(2).sum().item<double>();
  if (e5 == 0 && e3 == 0) return 0.0;
  return std::abs(h) * e5 / std::sqrt((e5 + 0.01 * e3) * static_cast<double>(x.numel()));
}

void AdaptiveRungeKutta::check_nfe(const Field& field, int64_t needed, int64_t step, double t) const {
  if (options_.max_nfe > 0 && field.nfe() + needed > options_.max_nfe)
    throw SolverError(
        fmt::format("{}: hit max_nfe = {} at step {} (t = {}): {} evaluations done, the next step needs {}", owner(),
                    options_.max_nfe, step, t, field.nfe(), needed));
}

void AdaptiveRungeKutta::integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const {
  if (options_.controller == Controller::torchdiffeq) return integrate_torchdiffeq(x0, field, opt, out);
  const auto& o = options_;
  const size_t s = tableau_.b.size();
  const double exponent = -1.0 / (tableau_.error_order + 1);
  double t = opt.t0;
  Tensor x = x0;
  field.set_step(0);
  check_nfe(field, o.first_step > 0 ? 1 : 2, 0, t);
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
        throw SolverError(
            fmt::format("{}: step size {} underflowed at step {} (t = {})", owner(), h_abs, out.accepted_steps, t));
      check_nfe(field, static_cast<int64_t>(s) - 1 + (f.defined() ? 0 : 1), out.accepted_steps, t);
      if (!f.defined()) f = field(x, t);  // a method that is not first-same-as-last: f at the new state
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
      const double err_norm = error_norm(k, h, x, x_new);
      if (err_norm < 1) {
        double factor = err_norm == 0 ? o.max_factor : std::min(o.max_factor, o.safety * std::pow(err_norm, exponent));
        if (rejected_before) factor = std::min(1.0, factor);
        h_abs *= factor;
        t = t_new;
        x = x_new;
        f = tableau_.fsal ? k[s - 1] : Tensor();
        ++out.accepted_steps;
        if (opt.return_trajectory) states.push_back(x), times.push_back(t);
        opt.report(t, x);
        break;
      }
      if (!std::isfinite(err_norm))
        throw SolverError(
            fmt::format("{}: error estimate is not finite at step {} (t = {})", owner(), out.accepted_steps, t));
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

// torchdiffeq 0.2.5: RKAdaptiveStepsizeODESolver._adaptive_step (rk_common.py), _optimal_step_size (misc.py) and
// _interp_fit / _interp_evaluate (interp.py).
void AdaptiveRungeKutta::integrate_torchdiffeq(const Tensor& x0, Field& field, const SampleOptions& opt,
                                               SampleResult& out) const {
  const auto& o = options_;
  const size_t s = tableau_.b.size();
  const double exponent = 1.0 / tableau_.order;
  double t = opt.t0;
  Tensor x = x0;
  field.set_step(0);
  check_nfe(field, o.first_step > 0 ? 1 : 2, 0, t);
  Tensor f = field(x, t);
  double dt = o.first_step > 0 ? o.first_step : initial_step(x, f, field, t, std::numeric_limits<double>::infinity());
  std::vector<Tensor> k(s);
  std::vector<Tensor> states;
  std::vector<double> times;
  auto keep = [&](double tt, const Tensor& xx) {
    if (opt.return_trajectory) states.push_back(xx), times.push_back(tt);
    opt.report(tt, xx);
  };
  keep(t, x0);
  int64_t attempts = 0;
  while (t < opt.t1) {
    if (attempts >= o.max_steps)
      throw SolverError(
          fmt::format("{}: exceeded max_steps = {} at step {} (t = {})", owner(), o.max_steps, out.accepted_steps, t));
    const double t_new = t + dt;
    if (!(t_new > t))
      throw SolverError(
          fmt::format("{}: step size {} underflowed at step {} (t = {})", owner(), dt, out.accepted_steps, t));
    check_nfe(field, static_cast<int64_t>(s) - 1, out.accepted_steps, t);
    ++attempts;
    field.set_step(out.accepted_steps);
    k[0] = f;
    Tensor x_new;
    for (size_t st = 1; st < s; ++st) {
      Tensor xs = combine(x, dt, tableau_.a[st], k, st);
      if (tableau_.fsal && st + 1 == s) x_new = xs;
      k[st] = field(xs, tableau_.c[st] == 1.0 ? t_new : t + tableau_.c[st] * dt);
    }
    if (!x_new.defined()) x_new = combine(x, dt, tableau_.b, k, s);
    const double err = error_norm(k, dt, x, x_new);
    if (!std::isfinite(err))
      throw SolverError(
          fmt::format("{}: error estimate is not finite at step {} (t = {})", owner(), out.accepted_steps, t));
    const double h = dt;
    dt *= err == 0 ? o.max_factor
                   : std::min(o.max_factor, std::max(o.safety / std::pow(err, exponent), err < 1 ? 1.0 : o.min_factor));
    if (err > 1) {
      ++out.rejected_steps;
      continue;
    }
    ++out.accepted_steps;
    f = k[s - 1];  // torchdiffeq's f1, the last stage, whether or not the method is first-same-as-last
    if (t_new <= opt.t1) {
      t = t_new, x = x_new;
      keep(t, x);
      continue;
    }
    // Past t1: the quartic through x, x_new, the midpoint state and both end slopes, at t1 (interp.py).
    const Tensor y_mid = combine(x, h, tableau_.mid, k, s);
    const Tensor &f0 = k[0], &f1 = k[s - 1];
    const Tensor c4 = 2 * h * (f1 - f0) - 8 * (x_new + x) + 16 * y_mid;
    const Tensor c3 = h * (5 * f0 - 3 * f1) + 18 * x + 14 * x_new - 32 * y_mid;
    const Tensor c2 = h * (f1 - 4 * f0) - 11 * x - 5 * x_new + 16 * y_mid;
    const double th = (opt.t1 - t) / (t_new - t);
    x = x + th * (h * f0) + th * th * c2 + th * th * th * c3 + th * th * th * th * c4;
    t = opt.t1;
    keep(t, x);
  }
  out.x = x;
  if (opt.return_trajectory) {
    out.trajectory = at::stack(states, 1);
    out.times = at::tensor(times, at::TensorOptions().dtype(at::kDouble));
  }
}

}  // namespace flowlab
