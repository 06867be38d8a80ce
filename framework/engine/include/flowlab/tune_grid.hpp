// flowlab tune-grid's optimiser: the times of a fixed-step or multistep solver's grid, for a given step budget, that
// bring its samples closest to a reference (by default the endpoints of a tight dopri5 solve from the same noise).
//
// Method: coordinate descent on the interior times t_1 .. t_{N-1}, each by a golden-section search inside its
// neighbours (t_{i-1}, t_{i+1}), so that the grid stays ordered; a pass keeps a new time only when the objective
// falls; passes repeat until one improves the objective by less than `tolerance` (relative). It starts from the best
// of the hand grids it is given, so the result is never worse than them on the tuning noise. Why not Align Your
// Steps' KL bound (arXiv 2404.14507): that bound is derived for the SDE of a diffusion model; for an ODE solver the
// quantity a researcher reads is the solver's own error against the exact flow, which this minimises directly, for
// any solver (Runge-Kutta or multistep) and any field, with nothing but solves of the field.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "flowlab/export.hpp"
#include "flowlab/solver.hpp"

namespace flowlab {

struct TuneGridOptions {
  int max_passes = 30;      ///< passes over the interior times at most
  int line_search = 24;     ///< objective evaluations per golden-section search
  double tolerance = 1e-4;  ///< stop when a pass lowers the objective by less than this share of it
};

/// The quantity to minimise, from the samples of a solve (smaller is better).
using GridObjective = std::function<double(const Tensor& samples)>;

struct TunedGrid {
  std::vector<double> times;                           ///< the tuned grid, 0 = t_0 < ... < t_N = 1
  double objective = 0;                                ///< the objective at `times`
  std::string start;                                   ///< the hand grid it started from (the best of `starts`)
  std::vector<std::pair<std::string, double>> starts;  ///< each hand grid's objective
  int64_t solves = 0;                                  ///< objective evaluations (solves), the hand grids' included
  int passes = 0;                                      ///< passes made
};

/// Solves from x0 on `times` with `solver` (steps taken from the grid), the trial's `path` passed to the solver.
FLOWLAB_API Tensor solve_on_grid(const Solver& solver, const VelocityField& field, const Tensor& x0,
                                 const std::vector<double>& times, const Path* path);

/// Tunes the grid; `starts` are labelled hand grids with the same number of steps (at least one). Deterministic for
/// a deterministic field and objective.
FLOWLAB_API TunedGrid tune_grid(const Solver& solver, const VelocityField& field, const Tensor& x0, const Path* path,
                                const GridObjective& objective,
                                const std::vector<std::pair<std::string, std::vector<double>>>& starts,
                                const TuneGridOptions& options = TuneGridOptions());

}  // namespace flowlab
