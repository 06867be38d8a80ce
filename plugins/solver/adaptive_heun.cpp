// Heun-Euler 2(1) (Butcher, Numerical Methods for ODEs, 2016, sec. 33; torchdiffeq's adaptive_heun.py): Heun's
// trapezoid with the Euler step as error estimate. 1 NFE per attempted step under controller torchdiffeq (which
// starts each step from the slope at the Euler state), 2 under scipy (which evaluates the slope at the new state).
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau adaptive_heun_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 1.0};
  tb.a = {{}, {1.0}};
  tb.b = {0.5, 0.5};
  tb.e = {0.5, -0.5};
  tb.mid = {0.5, 0.0};
  tb.order = 2;
  tb.error_order = 1;
  return tb;
}

}  // namespace

FLOWLAB_ADAPTIVE_SOLVER(adaptive_heun, adaptive_heun_tableau, "1.0.0", "Heun-Euler 2(1), adaptive")
