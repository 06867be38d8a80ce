// Explicit Euler: x_{n+1} = x_n + h v(x_n, t_n). First order, 1 NFE per step.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau euler_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0};
  tb.a = {{}};
  tb.b = {1.0};
  tb.order = 1;
  return tb;
}

}  // namespace

FLOWLAB_FIXED_STEP_SOLVER(euler, euler_tableau, "1.0.0", "explicit Euler, order 1, 1 NFE per step")
