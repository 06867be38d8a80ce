// Dormand & Prince 1980, RK5(4)7FSAL: adaptive, fifth order with a fourth-order error estimate, 6 NFE per
// attempted step thanks to first-same-as-last. Step control and first step as in SciPy's RK45 (controller scipy,
// unchanged) or torchdiffeq's dopri5 (controller torchdiffeq; midpoint weights are its DPS_C_MID, Shampine 1986).
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau dopri5_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
  tb.a = {{},
          {1.0 / 5},
          {3.0 / 40, 9.0 / 40},
          {44.0 / 45, -56.0 / 15, 32.0 / 9},
          {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
          {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
          {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
  tb.b = {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0.0};
  // e = b - b_hat (the fourth-order weights), as SciPy's RK45.E.
  tb.e = {-71.0 / 57600, 0.0, 71.0 / 16695, -71.0 / 1920, 17253.0 / 339200, -22.0 / 525, 1.0 / 40};
  // torchdiffeq's dopri5.py pairs b with another fourth-order solution (Shampine 1986), b_hat = (1951/21600, 0,
  // 22642/50085, 451/720, -12231/42400, 649/6300, 1/60): its error weights b - b_hat, for controller torchdiffeq.
  tb.e_torchdiffeq = {35.0 / 384 - 1951.0 / 21600,
                      0.0,
                      500.0 / 1113 - 22642.0 / 50085,
                      125.0 / 192 - 451.0 / 720,
                      -2187.0 / 6784 + 12231.0 / 42400,
                      11.0 / 84 - 649.0 / 6300,
                      -1.0 / 60};
  tb.mid = {6025192743.0 / 30085553152 / 2,     0.0,
            51252292925.0 / 65400821598 / 2,    -2691868925.0 / 45128329728 / 2,
            187940372067.0 / 1594534317056 / 2, -1776094331.0 / 19743644256 / 2,
            11237099.0 / 235043384 / 2};
  tb.order = 5;
  tb.error_order = 4;
  tb.fsal = true;
  return tb;
}

}  // namespace

FLOWLAB_ADAPTIVE_SOLVER(dopri5, dopri5_tableau, "1.2.0", "Dormand-Prince 5(4), adaptive, 6 NFE per attempted step")
