// Classic fourth-order Runge-Kutta (Kutta 1901). Fourth order, 4 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

/// Options of solver/rk4.
struct Rk4Options {
  int64_t steps;  ///< number of uniform steps on [0, 1] (default 10); SampleOptions may override it
  explicit Rk4Options(const flowlab::Params& p) : steps(p.integer("steps")) {}
};

class Rk4Solver final : public flowlab::FixedStepRungeKutta {
 public:
  explicit Rk4Solver(const flowlab::Params& p) : FixedStepRungeKutta(tableau(), Rk4Options(p).steps, "solver/rk4") {}

 private:
  static flowlab::ButcherTableau tableau() {
    flowlab::ButcherTableau tb;
    tb.c = {0.0, 0.5, 0.5, 1.0};
    tb.a = {{}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}};
    tb.b = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
    tb.order = 4;
    return tb;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, rk4, Rk4Solver, "1.0.0", "classic Runge-Kutta, order 4, 4 NFE per step",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1]"))
