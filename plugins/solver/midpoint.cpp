// Explicit midpoint rule: x_{n+1} = x_n + h v(x_n + h/2 v(x_n, t_n), t_n + h/2). Second order, 2 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

/// Options of solver/midpoint.
struct MidpointOptions {
  int64_t steps;  ///< number of uniform steps on [0, 1] (default 10); SampleOptions may override it
  explicit MidpointOptions(const flowlab::Params& p) : steps(p.integer("steps")) {}
};

class MidpointSolver final : public flowlab::FixedStepRungeKutta {
 public:
  explicit MidpointSolver(const flowlab::Params& p) : FixedStepRungeKutta(tableau(), MidpointOptions(p).steps, "solver/midpoint") {}

 private:
  static flowlab::ButcherTableau tableau() {
    flowlab::ButcherTableau tb;
    tb.c = {0.0, 0.5};
    tb.a = {{}, {0.5}};
    tb.b = {0.0, 1.0};
    tb.order = 2;
    return tb;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, midpoint, MidpointSolver, "1.0.0", "explicit midpoint, order 2, 2 NFE per step",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))
