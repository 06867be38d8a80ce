// Classic fourth-order Runge-Kutta (Kutta 1901). Fourth order, 4 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau rk4_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 0.5, 0.5, 1.0};
  tb.a = {{}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}};
  tb.b = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
  tb.order = 4;
  return tb;
}

}  // namespace

FLOWLAB_FIXED_STEP_SOLVER(rk4, rk4_tableau, "1.0.0", "classic Runge-Kutta, order 4, 4 NFE per step")
