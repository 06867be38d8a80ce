// Explicit Adams-Bashforth of order k = 2, 3, 4 on any grid (Hairer, Norsett & Wanner, Solving ODEs I, III.1,
// eq. (1.5), with the variable-step form of III.5): x_{n+1} = x_n + integral_{t_n}^{t_{n+1}} p(t) dt, p the
// polynomial interpolating v at t_n, ..., t_{n-k+1}; the weights integrate p's Lagrange basis exactly, so on a
// uniform grid they are the classic (3, -1)/2, (23, -16, 5)/12, (55, -59, 37, -9)/24. Start: the first k - 1 steps
// by a Runge-Kutta method of order k (Heun, Kutta's RK3, classic RK4), whose first stage is the step's evaluation.
// NFE = steps + (k - 1)^2; exact when the solution is a polynomial of degree k in t and v depends on t only.
#include <fmt/format.h>

#include "flowlab/multistep.hpp"

namespace {

using flowlab::Tensor;

int64_t order_of(const flowlab::Params& p) {
  const int64_t k = p.integer("order");
  if (k < 2 || k > 4) throw flowlab::ParamError(p.owner(), "order", fmt::format("must be 2, 3 or 4, got {}", k));
  return k;
}

flowlab::ButcherTableau start_tableau(int64_t k) {
  flowlab::ButcherTableau tb;
  if (k == 2) tb.c = {0.0, 1.0}, tb.a = {{}, {1.0}}, tb.b = {0.5, 0.5};
  if (k == 3) tb.c = {0.0, 0.5, 1.0}, tb.a = {{}, {0.5}, {-1.0, 2.0}}, tb.b = {1.0 / 6, 2.0 / 3, 1.0 / 6};
  if (k == 4)
    tb.c = {0.0, 0.5, 0.5, 1.0}, tb.a = {{}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}},
    tb.b = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
  tb.order = static_cast<int>(k);
  return tb;
}

class AdamsBashforth final : public flowlab::MultistepSolver {
 public:
  explicit AdamsBashforth(const flowlab::Params& p)
      : MultistepSolver(p.integer("steps"), order_of(p), p.owner()), k_(order_of(p)), start_(start_tableau(k_)) {}

 protected:
  Tensor advance(Run& run, size_t i, const Tensor& x, flowlab::Field& field) const override {
    const size_t k = static_cast<size_t>(k_);
    if (i + 1 < k)
      return flowlab::runge_kutta_step(start_, field, x, run.outputs[i], run.t[i], run.t[i + 1] - run.t[i]);
    std::vector<double> nodes(k);
    for (size_t j = 0; j < k; ++j) nodes[j] = run.t[i - j];
    const std::vector<double> w = flowlab::lagrange_integral_weights(nodes, run.t[i], run.t[i + 1]);
    Tensor out = x.add(run.outputs[i], w[0]);
    for (size_t j = 1; j < k; ++j) out.add_(run.outputs[i - j], w[j]);
    return out;
  }

 private:
  int64_t k_;
  flowlab::ButcherTableau start_;
};

}  // namespace

FLOWLAB_PLUGIN(solver, adams_bashforth, AdamsBashforth, "1.0.0",
               "explicit Adams-Bashforth of order 2-4, variable steps, RK start; NFE = steps + (order - 1)^2",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1] (at least the order)")
                   FLOWLAB_PARAM(order, int, "3", "order k: 2, 3 or 4"))
