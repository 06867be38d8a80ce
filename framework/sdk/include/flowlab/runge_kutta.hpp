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
  std::vector<double> c;               ///< the stages' times c_i
  std::vector<std::vector<double>> a;  ///< the coefficients a_ij, row i with i entries
  std::vector<double> b;               ///< the weights b_i of the solution
  std::vector<double> e;               ///< empty for fixed-step methods
  /// A second error estimate (DOP853's E3, with e its E5): when set, the error norm is Hairer's dop853.f
  /// |h| ||E5 k||^2 / sqrt(n (||E5 k||^2 + 0.01 ||E3 k||^2)) on scaled vectors, as SciPy's DOP853; e and e_aux then
  /// exclude the factor h. Empty otherwise.
  std::vector<double> e_aux;
  /// Error weights of the same pair as torchdiffeq writes it, where they differ from `e`, used under controller
  /// torchdiffeq (dopri5: Shampine's 1986 fourth-order weights, not Dormand and Prince's). Empty: `e`.
  std::vector<double> e_torchdiffeq;
  /// Weights giving the state at the step's midpoint, x + h sum mid_i k_i, for torchdiffeq's quartic interpolation
  /// to the end time (controller torchdiffeq); empty when the method has none.
  std::vector<double> mid;
  int order = 1;        ///< order of b
  int error_order = 0;  ///< order of the error estimate (the lower order of the pair); 0 if none
  bool fsal = false;    ///< the last stage is f(t + h, x_new) (first same as last)
  int64_t stages() const { return static_cast<int64_t>(b.size()); }  ///< the number of stages
};

/// Fixed-step explicit RK on a uniform grid of `steps` steps, or on SampleOptions::grid.
class FLOWLAB_API FixedStepRungeKutta : public Solver {
 public:
  /// `owner` is "solver/<name>" for messages; steps must be > 0 (ParamError otherwise).
  FixedStepRungeKutta(ButcherTableau tableau, int64_t steps, const std::string& owner);
  /// The method's Butcher tableau.
  const ButcherTableau& tableau() const { return tableau_; }
  /// The number of uniform steps (SampleOptions may override it per call).
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
  /// Reads `steps`.
  explicit FixedStepOptions(const Params& p) : steps(p.integer("steps")) {}
};

/// Declares fixed-step solver `solver/<name>` from a function returning its Butcher tableau: the whole plugin is
/// the tableau plus this line. Example: FLOWLAB_FIXED_STEP_SOLVER(rk4, rk4_tableau, "1.0.0", "classic RK4")
#define FLOWLAB_FIXED_STEP_SOLVER(name, tableau_fn, version, description)                             \
  namespace {                                                                                         \
  class FixedStepSolver_##name final : public ::flowlab::FixedStepRungeKutta {                        \
   public:                                                                                            \
    explicit FixedStepSolver_##name(const ::flowlab::Params& p)                                       \
        : FixedStepRungeKutta(tableau_fn(), ::flowlab::FixedStepOptions(p).steps, "solver/" #name) {} \
  };                                                                                                  \
  }                                                                                                   \
  FLOWLAB_PLUGIN(solver, name, FixedStepSolver_##name, version, description,                          \
                 FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))

/// Which step-size controller an adaptive method follows.
///  * scipy: SciPy's RungeKutta (RK45, RK23, DOP853): accept when error < 1, exponent -1/(error_order+1), no growth
///    right after a rejection, the last step clipped to t1, first step min(Hairer II.4, t1 - t0);
///  * torchdiffeq: torchdiffeq 0.2.5 rk_common.py / misc.py: accept when error <= 1, factor
///    min(max_factor, max(safety / error^(1/order), min_factor or 1 after an accepted step)), the first step Hairer's
///    without the span cap, steps not clipped: the state at t1 is the quartic interpolant through the last step's
///    ends and midpoint (interp.py), and the last stage always starts the next step (as torchdiffeq does, even for
///    tableaux that are not first-same-as-last).
enum class Controller { scipy, torchdiffeq };

/// Step-size control of an adaptive method; every field is a plugin parameter whose default is in the plugin's
/// schema (FLOWLAB_PARAM), the one place it is written. The constructor of
/// AdaptiveRungeKutta rejects rtol <= 0, atol < 0, max_steps <= 0 and factors out of range (ParamError).
struct FLOWLAB_API AdaptiveOptions {
  double rtol;                                ///< relative tolerance, > 0
  double atol;                                ///< absolute tolerance, >= 0
  double safety;                              ///< factor = safety * err^(-1/(error_order+1))
  double min_factor;                          ///< the most a step may shrink
  double max_factor;                          ///< the most a step may grow
  int64_t max_steps;                          ///< attempted steps before SolverError
  double first_step;                          ///< 0: choose it (Hairer's algorithm)
  Controller controller = Controller::scipy;  ///< whose step-size control to follow
  int64_t max_nfe = 0;  ///< evaluations allowed per solve, 0 = no cap; a step that would pass it fails (SolverError)
  AdaptiveOptions() = default;
  /// Reads the parameters FLOWLAB_ADAPTIVE_SOLVER declares.
  explicit AdaptiveOptions(const Params& p);
};

/// Embedded-pair explicit RK with error control: error = RMS(e / (atol + rtol * max(|x|, |x_new|))) and, by default,
/// the controller of SciPy's RK45: accept when error < 1, h <- h * clamp(safety * error^(-1/(error_order+1)),
/// min_factor, max_factor), never growing right after a rejection (see Controller for torchdiffeq's).
class FLOWLAB_API AdaptiveRungeKutta : public Solver {
 public:
  /// `owner` is "solver/<name>" for messages; rejects out-of-range options with ParamError.
  AdaptiveRungeKutta(ButcherTableau tableau, AdaptiveOptions options, const std::string& owner);
  /// The step-size control options.
  const AdaptiveOptions& options() const { return options_; }
  /// The method's Butcher tableau.
  const ButcherTableau& tableau() const { return tableau_; }
  bool adaptive() const override { return true; }

 protected:
  void integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const override;

 private:
  double initial_step(const Tensor& x0, const Tensor& f0, Field& field, double t0, double span) const;
  double error_norm(const std::vector<Tensor>& k, double h, const Tensor& x, const Tensor& x_new) const;
  void integrate_torchdiffeq(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const;
  void check_nfe(const Field& field, int64_t needed, int64_t step, double t) const;
  ButcherTableau tableau_;
  AdaptiveOptions options_;
};

}  // namespace flowlab

/// Declares adaptive solver `solver/<name>` from a function returning its embedded-pair tableau, with the controller
/// parameters every adaptive solver takes: the whole plugin is the tableau plus this line.
#define FLOWLAB_ADAPTIVE_SOLVER(name, tableau_fn, version, description)                                              \
  namespace {                                                                                                        \
  class AdaptiveSolver_##name final : public ::flowlab::AdaptiveRungeKutta {                                         \
   public:                                                                                                           \
    explicit AdaptiveSolver_##name(const ::flowlab::Params& p)                                                       \
        : AdaptiveRungeKutta(tableau_fn(), ::flowlab::AdaptiveOptions(p), "solver/" #name) {}                        \
  };                                                                                                                 \
  }                                                                                                                  \
  FLOWLAB_PLUGIN(                                                                                                    \
      solver, name, AdaptiveSolver_##name, version, description,                                                     \
      FLOWLAB_PARAM(rtol, float, "1e-5", "relative tolerance")                                                       \
          FLOWLAB_PARAM(atol, float, "1e-5", "absolute tolerance")                                                   \
              FLOWLAB_PARAM(safety, float, "0.9", "safety factor on the optimal step")                               \
                  FLOWLAB_PARAM(min_factor, float, "0.2", "smallest step ratio after a step")                        \
                      FLOWLAB_PARAM(max_factor, float, "10", "largest step ratio after a step")                      \
                          FLOWLAB_PARAM(max_steps, int, "10000", "attempted steps before the solve fails")           \
                              FLOWLAB_PARAM(first_step, float, "0", "first step size; 0 selects it (Hairer II.4)")   \
                                  FLOWLAB_PARAM(controller, enum(scipy | torchdiffeq), "scipy",                      \
                                                "step-size control as SciPy's solve_ivp or as torchdiffeq's odeint") \
                                      FLOWLAB_PARAM(max_nfe, int, "0", "evaluations allowed per solve; 0: no cap"))
