// Heun's third-order method (Heun 1900; Hairer, Norsett & Wanner I, Table II.1.1), the tableau of torchdiffeq's
// fixed_grid.py Heun3: c = (0, 1/3, 2/3), b = (1/4, 0, 3/4). Third order, 3 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau heun3_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 1.0 / 3, 2.0 / 3};
  tb.a = {{}, {1.0 / 3}, {0.0, 2.0 / 3}};
  tb.b = {1.0 / 4, 0.0, 3.0 / 4};
  tb.order = 3;
  return tb;
}

}  // namespace

FLOWLAB_FIXED_STEP_SOLVER(heun3, heun3_tableau, "1.0.0", "Heun's third-order method, 3 NFE per step")
