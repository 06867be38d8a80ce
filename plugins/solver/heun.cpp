// Heun's method (explicit trapezoid): average of the slopes at both ends. Second order, 2 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau heun_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 1.0};
  tb.a = {{}, {1.0}};
  tb.b = {0.5, 0.5};
  tb.order = 2;
  return tb;
}

}  // namespace

FLOWLAB_FIXED_STEP_SOLVER(heun, heun_tableau, "1.0.0", "Heun (explicit trapezoid), order 2, 2 NFE per step")
