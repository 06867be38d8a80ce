// Explicit Euler: x_{n+1} = x_n + h v(x_n, t_n). First order, 1 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

/// Options of solver/euler.
struct EulerOptions {
  int64_t steps;  ///< number of uniform steps on [0, 1] (default 10); SampleOptions may override it
  explicit EulerOptions(const flowlab::Params& p) : steps(p.integer("steps")) {}
};

class EulerSolver final : public flowlab::FixedStepRungeKutta {
 public:
  explicit EulerSolver(const flowlab::Params& p) : FixedStepRungeKutta(tableau(), EulerOptions(p).steps, "solver/euler") {}

 private:
  static flowlab::ButcherTableau tableau() {
    flowlab::ButcherTableau tb;
    tb.c = {0.0};
    tb.a = {{}};
    tb.b = {1.0};
    tb.order = 1;
    return tb;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, euler, EulerSolver, "1.0.0", "explicit Euler, order 1, 1 NFE per step",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))
