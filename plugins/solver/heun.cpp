// Heun's method (explicit trapezoid): average of the slopes at both ends. Second order, 2 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

/// Options of solver/heun.
struct HeunOptions {
  int64_t steps;  ///< number of uniform steps on [0, 1] (default 10); SampleOptions may override it
  explicit HeunOptions(const flowlab::Params& p) : steps(p.integer("steps")) {}
};

class HeunSolver final : public flowlab::FixedStepRungeKutta {
 public:
  explicit HeunSolver(const flowlab::Params& p) : FixedStepRungeKutta(tableau(), HeunOptions(p).steps, "solver/heun") {}

 private:
  static flowlab::ButcherTableau tableau() {
    flowlab::ButcherTableau tb;
    tb.c = {0.0, 1.0};
    tb.a = {{}, {1.0}};
    tb.b = {0.5, 0.5};
    tb.order = 2;
    return tb;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, heun, HeunSolver, "1.0.0", "Heun (explicit trapezoid), order 2, 2 NFE per step",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))
