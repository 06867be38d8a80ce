// Explicit midpoint rule: x_{n+1} = x_n + h v(x_n + h/2 v(x_n, t_n), t_n + h/2). Second order, 2 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau midpoint_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 0.5};
  tb.a = {{}, {0.5}};
  tb.b = {0.0, 1.0};
  tb.order = 2;
  return tb;
}

}  // namespace

FLOWLAB_FIXED_STEP_SOLVER(midpoint, midpoint_tableau, "1.0.0", "explicit midpoint, order 2, 2 NFE per step")
