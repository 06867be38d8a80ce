// Coordinate descent with golden-section line searches on a solver's time grid (see tune_grid.hpp).
#include "flowlab/tune_grid.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "flowlab/errors.hpp"

namespace flowlab {

Tensor solve_on_grid(const Solver& solver, const VelocityField& field, const Tensor& x0,
                     const std::vector<double>& times, const Path* path) {
  SampleOptions so;
  so.grid = at::tensor(times, at::kDouble);
  so.path = path;
  return solver.sample(x0, field, so).x;
}

namespace {

// The minimum over [lo, hi] of f by golden-section search with `evaluations` evaluations; returns (x, f(x)).
std::pair<double, double> golden_section(const std::function<double(double)>& f, double lo, double hi,
                                         int evaluations) {
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = lo, b = hi;
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  for (int k = 2; k < evaluations; ++k) {
    if (fc <= fd) {
      b = d, d = c, fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return fc <= fd ? std::make_pair(c, fc) : std::make_pair(d, fd);
}

}  // namespace

TunedGrid tune_grid(const Solver& solver, const VelocityField& field, const Tensor& x0, const Path* path,
                    const GridObjective& objective,
                    const std::vector<std::pair<std::string, std::vector<double>>>& starts,
                    const TuneGridOptions& options) {
  if (starts.empty()) throw Error("tune-grid: no grid to start from");
  TunedGrid out;
  auto value = [&](const std::vector<double>& t) {
    ++out.solves;
    const double v = objective(solve_on_grid(solver, field, x0, t, path));
    return std::isfinite(v) ? v : std::numeric_limits<double>::infinity();
  };
  out.objective = std::numeric_limits<double>::infinity();
  for (const auto& [label, t] : starts) {
    if (t.size() != starts.front().second.size())
      throw Error(fmt::format("tune-grid: grid {} has {} times, {} has {}", label, t.size(), starts.front().first,
                              starts.front().second.size()));
    const double v = value(t);
    out.starts.emplace_back(label, v);
    if (v < out.objective) out.objective = v, out.times = t, out.start = label;
  }
  std::vector<double>& t = out.times;
  for (out.passes = 0; out.passes < options.max_passes && t.size() > 2;) {
    ++out.passes;
    const double before = out.objective;
    for (size_t i = 1; i + 1 < t.size(); ++i) {
      // Inside the neighbours, a thousandth of the gap away from each, so the grid stays strictly increasing.
      const double gap = t[i + 1] - t[i - 1], lo = t[i - 1] + 1e-3 * gap, hi = t[i + 1] - 1e-3 * gap;
      std::vector<double> trial = t;
      const auto [best, f] = golden_section(
          [&](double s) {
            trial[i] = s;
            return value(trial);
          },
          lo, hi, options.line_search);
      if (f < out.objective) t[i] = best, out.objective = f;
    }
    if (!(before - out.objective > options.tolerance * before)) break;
  }
  return out;
}

}  // namespace flowlab
