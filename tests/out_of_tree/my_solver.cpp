// An out-of-tree plugin, built against the installed flowlab package: Ralston's second-order method.
#include "flowlab/runge_kutta.hpp"

namespace {

flowlab::ButcherTableau ralston_tableau() {
  flowlab::ButcherTableau tb;
  tb.c = {0.0, 2.0 / 3};
  tb.a = {{}, {2.0 / 3}};
  tb.b = {0.25, 0.75};
  tb.order = 2;
  return tb;
}

}  // namespace

FLOWLAB_FIXED_STEP_SOLVER(ralston, ralston_tableau, "0.1.0", "Ralston's method, order 2, 2 NFE per step")
