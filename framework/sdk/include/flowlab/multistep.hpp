// Multistep solvers: one field evaluation per step after the start, reusing the values at earlier grid times.
// The base runs the grid (`steps` uniform steps or SampleOptions::grid, as fixed-step Runge-Kutta solvers do); a
// method supplies what it keeps of each evaluation and how it steps. Data-prediction methods (DPM-Solver++,
// UniPC) read the trained path's affine schedule through DataSchedule.
#pragma once

#include <optional>
#include <vector>

#include "flowlab/runge_kutta.hpp"
#include "flowlab/solver.hpp"

namespace flowlab {

/// The times of a multistep solve: step_grid (solver.hpp), and fewer than `min_steps` steps is a ParamError naming
/// `owner`, the parameter (steps or grid) and the minimum.
FLOWLAB_API std::vector<double> solver_grid(const SampleOptions& opt, int64_t steps, int64_t min_steps,
                                            const std::string& owner);

/// w_j = integral over [a, b] of the Lagrange basis polynomial L_j on `nodes` (distinct), exact up to rounding:
/// integral_a^b p(t) dt = sum_j w_j p(nodes[j]) for every polynomial p of degree < nodes.size().
FLOWLAB_API std::vector<double> lagrange_integral_weights(const std::vector<double>& nodes, double a, double b);

/// One explicit Runge-Kutta step of size h from (t, x), given its first stage k0 = v(x, t).
FLOWLAB_API Tensor runge_kutta_step(const ButcherTableau& tableau, Field& field, const Tensor& x, const Tensor& k0,
                                    double t, double h);

/// An affine path's schedule on a solver's grid, in double on the host: alpha, sigma and
/// lambda = log(alpha) - log(sigma) at every time, and the velocity -> x1 coefficients (Path::velocity_to_x1,
/// x1 = to_x1_x * x + to_x1_v * v) at every time but the last.
struct FLOWLAB_API DataSchedule {
  ///@{
  std::vector<double> alpha, sigma, lambda, to_x1_x, to_x1_v;  ///< per grid time (to_x1_*: all but the last)
  ///@}
  /// Reads opt.path at `times`. SolverError naming `owner` when opt.path is null or not affine, when the schedule
  /// is not finite where it is used, or when lambda does not increase along the times.
  DataSchedule(const SampleOptions& opt, const std::vector<double>& times, const std::string& owner);
  /// The data (x1) prediction from the field's value v at (x, times[i]).
  Tensor x1(size_t i, const Tensor& x, const Tensor& v) const;
};

/// Base of multistep solvers: runs the grid and the bookkeeping; a method supplies output(), correct() and
/// advance().
class FLOWLAB_API MultistepSolver : public Solver {
 public:
  /// ParamError naming `owner`, 'steps' and `min_steps` when steps < min_steps.
  MultistepSolver(int64_t steps, int64_t min_steps, const std::string& owner);
  /// The number of steps on the uniform grid (SampleOptions may override it).
  int64_t steps() const { return steps_; }
  /// The fewest steps the method takes (its order).
  int64_t min_steps() const { return min_steps_; }

 protected:
  /// One solve as the method sees it.
  struct Run {
    std::vector<double> t;                 ///< the grid t_0 < ... < t_N
    std::vector<Tensor> outputs;           ///< output() of the evaluation at each t_j so far, oldest first; those more
                                           ///< than three steps back are released (undefined)
    Tensor last_x;                         ///< the state the previous step started from (after correct())
    std::optional<DataSchedule> schedule;  ///< set by data-prediction methods in prepare()
    const SampleOptions* opt = nullptr;    ///< the options of this solve
  };
  /// Per-solve setup before the first evaluation (reading the path's schedule, say). Default: nothing.
  virtual void prepare(Run& run) const { (void)run; }
  /// What the method keeps of v_i = v(x_i, t_i): v_i itself unless overridden (a data prediction, say).
  virtual Tensor output(const Run& run, size_t i, const Tensor& x, const Tensor& v) const;
  /// x_i corrected once outputs[i] is known (a corrector that reuses the evaluation); default x_i itself.
  virtual Tensor correct(const Run& run, size_t i, const Tensor& x) const;
  /// x_{i+1} from x_i (after correct()) and outputs[0..i]. Extra evaluations of `field` (a Runge-Kutta start)
  /// are counted as usual.
  virtual Tensor advance(Run& run, size_t i, const Tensor& x, Field& field) const = 0;

 private:
  void integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const final;
  int64_t steps_, min_steps_;
};

}  // namespace flowlab
