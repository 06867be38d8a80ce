// An out-of-tree plugin, built against the installed flowlab package: Ralston's second-order method.
#include "flowlab/runge_kutta.hpp"

namespace {

/// Options of solver/ralston.
struct RalstonOptions {
  int64_t steps;  ///< number of uniform steps on [0, 1] (default 10)
  explicit RalstonOptions(const flowlab::Params& p) : steps(p.integer("steps")) {}
};

class RalstonSolver final : public flowlab::FixedStepRungeKutta {
 public:
  explicit RalstonSolver(const flowlab::Params& p) : FixedStepRungeKutta(tableau(), RalstonOptions(p).steps, "solver/ralston") {}

 private:
  static flowlab::ButcherTableau tableau() {
    flowlab::ButcherTableau tb;
    tb.c = {0.0, 2.0 / 3};
    tb.a = {{}, {2.0 / 3}};
    tb.b = {0.25, 0.75};
    tb.order = 2;
    return tb;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, ralston, RalstonSolver, "0.1.0", "Ralston's method, order 2, 2 NFE per step",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))
