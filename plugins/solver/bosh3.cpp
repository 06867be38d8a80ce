// Bogacki & Shampine 1989, "A 3(2) pair of Runge-Kutta formulas" (Appl. Math. Lett. 2(4)): order 3 with a
// second-order error estimate, first-same-as-last, 3 NFE per attempted step. Tableau and E as SciPy's RK23
// (scipy/integrate/_ivp/rk.py); midpoint weights as torchdiffeq's bosh3.py (_BS_C_MID).
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau bosh3_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 1.0 / 2, 3.0 / 4, 1.0};
  tb.a = {{}, {1.0 / 2}, {0.0, 3.0 / 4}, {2.0 / 9, 1.0 / 3, 4.0 / 9}};
  tb.b = {2.0 / 9, 1.0 / 3, 4.0 / 9, 0.0};
  tb.e = {5.0 / 72, -1.0 / 12, -1.0 / 9, 1.0 / 8};
  tb.mid = {0.0, 0.5, 0.0, 0.0};
  tb.order = 3;
  tb.error_order = 2;
  tb.fsal = true;
  return tb;
}

}  // namespace

FLOWLAB_ADAPTIVE_SOLVER(bosh3, bosh3_tableau, "1.0.0", "Bogacki-Shampine 3(2), adaptive, 3 NFE per attempted step")
