// Fehlberg 1969, "Low-order classical Runge-Kutta formulas with stepsize control" (NASA TR R-315), the RK1(2)
// pair as torchdiffeq's fehlberg2.py: the second-order weights b propagate, the first-order ones estimate the
// error; 2 NFE per attempted step under controller torchdiffeq (which starts each step from the last stage, the
// slope at the first-order state), 3 under scipy (which evaluates the slope at the new state).
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau fehlberg2_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 1.0 / 2, 1.0};
  tb.a = {{}, {1.0 / 2}, {1.0 / 256, 255.0 / 256}};
  tb.b = {1.0 / 512, 255.0 / 256, 1.0 / 512};
  tb.e = {-1.0 / 512, 0.0, 1.0 / 512};
  tb.mid = {0.0, 0.5, 0.0};
  tb.order = 2;
  tb.error_order = 1;
  return tb;
}

}  // namespace

FLOWLAB_ADAPTIVE_SOLVER(fehlberg2, fehlberg2_tableau, "1.0.0", "Fehlberg 2(1), adaptive")
