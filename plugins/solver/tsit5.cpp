// Tsitouras 2011, "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying assumption"
// (Comput. Math. Appl. 62(2), Table 1): order 5 with a fourth-order error estimate, first-same-as-last, 6 NFE per
// attempted step. Midpoint weights: the paper's continuous extension b_i(theta) at theta = 1/2 (the polynomials
// of OrdinaryDiffEq's Tsit5 interpolant), for the torchdiffeq controller's interpolation.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau tsit5_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0};
  tb.a = {{},
          {0.161},
          {-0.008480655492356989, 0.335480655492357},
          {2.897153057105493, -6.359448489975075, 4.3622954328695815},
          {5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525},
          {5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383},
          {0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774}};
  tb.b = {0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774, 0.0};
  tb.e = {-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995, -0.1447110071732629,
          0.5823571654525552,      -0.45808210592918697,   0.015151515151515152};
  tb.mid = {0.10741235230096878,
            0.011356249999999998,
            0.3956090305604531,
            -0.3447521435259353,
            1.316185364958165,
            -1.0170608542936517,
            0.03125};
  tb.order = 5;
  tb.error_order = 4;
  tb.fsal = true;
  return tb;
}

}  // namespace

FLOWLAB_ADAPTIVE_SOLVER(tsit5, tsit5_tableau, "1.0.0", "Tsitouras 5(4), adaptive, 6 NFE per attempted step")
