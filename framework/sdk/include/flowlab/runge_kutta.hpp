// The one explicit Runge-Kutta engine: a method is a Butcher tableau (torchdiffeq's rk_common.py idea).
// Fixed-step methods run it on a grid; embedded pairs add error control (Hairer, Norsett & Wanner, II.4).
#pragma once

#include <vector>

#include "flowlab/plugin.hpp"
#include "flowlab/solver.hpp"

namespace flowlab {

/// c_i, a_ij (lower triangular, row i has i entries), weights b and, for embedded pairs, the error weights
/// e = b - b_hat. `fsal`: the last stage is f(t + h, x_new) (first same as last).
struct ButcherTableau {
  std::vector<double> c;
  std::vector<std::vector<double>> a;
  std::vector<double> b;
  std::vector<double> e;  ///< empty for fixed-step methods
  int order = 1;          ///< order of b
  int error_order = 0;    ///< order of the error estimate (the lower order of the pair); 0 if none
  bool fsal = false;
  int64_t stages() const { return static_cast<int64_t>(b.size()); }
};

/// Fixed-step explicit RK on a uniform grid of `steps` steps, or on SampleOptions::grid.
class FLOWLAB_API FixedStepRungeKutta : public Solver {
 public:
  /// `owner` is "solver/<name>" for messages; steps must be > 0 (ParamError otherwise).
  FixedStepRungeKutta(ButcherTableau tableau, int64_t steps, const std::string& owner);
  const ButcherTableau& tableau() const { return tableau_; }
  int64_t steps() const { return steps_; }

 protected:
  void integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const override;

 private:
  ButcherTableau tableau_;
  int64_t steps_;
};

/// The options every fixed-step method takes: `steps`, whose default lives in FLOWLAB_FIXED_STEP_SOLVER's schema.
struct FixedStepOptions {
  int64_t steps;  ///< number of uniform steps on [0, 1]; SampleOptions may override it per call
  explicit FixedStepOptions(const Params& p) : steps(p.integer("steps")) {}
};

/// Declares fixed-step solver `solver/<name>` from a function returning its Butcher tableau: the whole plugin is
/// the tableau plus this line. Example: FLOWLAB_FIXED_STEP_SOLVER(rk4, rk4_tableau, "1.0.0", "classic RK4")
#define FLOWLAB_FIXED_STEP_SOLVER(name, tableau_fn, version, description)                                  \
  namespace {                                                                                             \
  class FixedStepSolver_##name final : public ::flowlab::FixedStepRungeKutta {                             \
   public:                                                                                                \
    explicit FixedStepSolver_##name(const ::flowlab::Params& p)                                           \
        : FixedStepRungeKutta(tableau_fn(), ::flowlab::FixedStepOptions(p).steps, "solver/" #name) {}     \
  };                                                                                                      \
  }                                                                                                       \
  FLOWLAB_PLUGIN(solver, name, FixedStepSolver_##name, version, description,                               \
                 FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))

/// Step-size control of an adaptive method; every field is a plugin parameter whose default is in the plugin's
/// schema (FLOWLAB_PARAM), the one place it is written. The constructor of
/// AdaptiveRungeKutta rejects rtol <= 0, atol < 0, max_steps <= 0 and factors out of range (ParamError).
struct AdaptiveOptions {
  double rtol;
  double atol;
  double safety;       ///< factor = safety * err^(-1/(error_order+1))
  double min_factor;   ///< the most a step may shrink
  double max_factor;   ///< the most a step may grow
  int64_t max_steps;   ///< attempted steps before SolverError
  double first_step;   ///< 0: choose it (Hairer's algorithm)
};

/// Embedded-pair explicit RK with error control, following the controller of SciPy's RK45:
/// error = RMS(e / (atol + rtol * max(|x|, |x_new|))), accept when error < 1,
/// h <- h * clamp(safety * error^(-1/(error_order+1)), min_factor, max_factor), never growing right after a
/// rejection.
class FLOWLAB_API AdaptiveRungeKutta : public Solver {
 public:
  AdaptiveRungeKutta(ButcherTableau tableau, AdaptiveOptions options, const std::string& owner);
  const AdaptiveOptions& options() const { return options_; }
  bool adaptive() const override { return true; }

 protected:
  void integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const override;

 private:
  double initial_step(const Tensor& x0, const Tensor& f0, Field& field, double t0, double span) const;
  ButcherTableau tableau_;
  AdaptiveOptions options_;
};

}  // namespace flowlab
