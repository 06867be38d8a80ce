// Dormand & Prince 1980, RK5(4)7FSAL: adaptive, fifth order with a fourth-order error estimate, 6 NFE per
// attempted step thanks to first-same-as-last. Step control and first step as in SciPy's RK45.
#include "flowlab/runge_kutta.hpp"

namespace {

/// Options of solver/dopri5 (see flowlab::AdaptiveOptions for the controller).
struct Dopri5Options {
  flowlab::AdaptiveOptions adaptive;
  explicit Dopri5Options(const flowlab::Params& p) {
    adaptive.rtol = p.real("rtol");
    adaptive.atol = p.real("atol");
    adaptive.safety = p.real("safety");
    adaptive.min_factor = p.real("min_factor");
    adaptive.max_factor = p.real("max_factor");
    adaptive.max_steps = p.integer("max_steps");
    adaptive.first_step = p.real("first_step");
  }
};

class Dopri5Solver final : public flowlab::AdaptiveRungeKutta {
 public:
  explicit Dopri5Solver(const flowlab::Params& p)
      : AdaptiveRungeKutta(tableau(), Dopri5Options(p).adaptive, "solver/dopri5") {}

 private:
  static flowlab::ButcherTableau tableau() {
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
    tb.order = 5;
    tb.error_order = 4;
    tb.fsal = true;
    return tb;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, dopri5, Dopri5Solver, "1.0.0", "Dormand-Prince 5(4), adaptive, 6 NFE per attempted step",
               FLOWLAB_PARAM(rtol, float, "1e-5", "relative tolerance")
               FLOWLAB_PARAM(atol, float, "1e-5", "absolute tolerance")
               FLOWLAB_PARAM(safety, float, "0.9", "safety factor on the optimal step")
               FLOWLAB_PARAM(min_factor, float, "0.2", "smallest step ratio after a step")
               FLOWLAB_PARAM(max_factor, float, "10", "largest step ratio after a step")
               FLOWLAB_PARAM(max_steps, int, "10000", "attempted steps before the solve fails")
               FLOWLAB_PARAM(first_step, float, "0", "first step size; 0 selects it (Hairer II.4)"))
