// UniPC (Zhao et al. 2023, arXiv 2302.04867): the predictor UniP-p and the corrector UniC-p (Sec. 3, with
// B(h) = e^h - 1, "bh2"), data prediction, order 2, as diffusers' UniPCMultistepScheduler (predict_x0, bh2,
// solver_order 2, lower_order_final; multistep_uni_p_bh_update and multistep_uni_c_bh_update) with use_flow_sigmas
// and prediction_type flow_prediction on the rectified path. In lambda = log(alpha / sigma) of the path's schedule,
// D_i the x1 prediction at t_i, h = lambda_{i+1} - lambda_i, hh = -h, r = (lambda_{i-1} - lambda_i) / h:
//   UniP: x_{i+1} = (sigma_{i+1}/sigma_i) x_i - alpha_{i+1} (e^hh - 1) D_i - alpha_{i+1} B(h) (1/2) (D_{i-1} - D_i) / r
//         (order p_i = min(2, N - i, i + 1): first order at the first and the last step);
//   UniC: once D_{i+1} is evaluated at the predicted x_{i+1}, x_{i+1} is recomputed from x_i with the new value
//         in the interpolation: rho solves [1 1; r 1] rho = (b_1, b_2), b_1 = (phi_1 / hh - 1) / B(h),
//         b_2 = 2 ((phi_1 / hh - 1) / hh - 1/2) / B(h), phi_1 = e^hh - 1 (rho = 1/2 at order 1).
// The corrector reuses the next step's evaluation, so NFE = steps; the last state is not corrected. Where
// alpha_{t_0} = 0 (t = 0), the coefficients take the schedule at t_0 + 1e-6, as diffusers moves sigma = 1 to
// 1 - 1e-6 (set_timesteps, "to avoid inf torch.log(alpha_si)"); the field is still evaluated at t_0.
#include <cmath>

#include "flowlab/multistep.hpp"

namespace {

using flowlab::Tensor;

class UniPC final : public flowlab::MultistepSolver {
 public:
  explicit UniPC(const flowlab::Params& p) : MultistepSolver(p.integer("steps"), 2, p.owner()) {}

 protected:
  void prepare(Run& run) const override {
    run.schedule.emplace(*run.opt, run.t, owner());
    if (run.schedule->alpha[0] == 0) {
      std::vector<double> t = run.t;
      t[0] += 1e-6;
      run.schedule.emplace(*run.opt, t, owner());
    }
  }
  Tensor output(const Run& run, size_t i, const Tensor& x, const Tensor& v) const override {
    return run.schedule->x1(i, x, v);
  }
  Tensor correct(const Run& run, size_t i, const Tensor& x) const override {
    if (i == 0) return x;
    const auto& s = *run.schedule;
    const size_t j = i - 1;  // the step that predicted x_i
    const double hh = -(s.lambda[i] - s.lambda[j]), phi1 = std::expm1(hh), bh = std::expm1(hh);
    const Tensor& m0 = run.outputs[j];
    const Tensor& mt = run.outputs[i];
    Tensor out = (run.last_x * (s.sigma[i] / s.sigma[j])).add_(m0, -s.alpha[i] * phi1);
    if (order(run, j) == 1) return out.add_(mt - m0, -s.alpha[i] * bh * 0.5);
    const double r = (s.lambda[j - 1] - s.lambda[j]) / -hh;
    const double b1 = (phi1 / hh - 1) / bh, b2 = 2 * ((phi1 / hh - 1) / hh - 0.5) / bh;
    const double rho0 = (b2 - b1) / (r - 1), rho1 = b1 - rho0;
    const double c = -s.alpha[i] * bh;
    return out.add_(run.outputs[j - 1], c * rho0 / r).add_(m0, -c * (rho0 / r + rho1)).add_(mt, c * rho1);
  }
  Tensor advance(Run& run, size_t i, const Tensor& x, flowlab::Field&) const override {
    const auto& s = *run.schedule;
    const double hh = -(s.lambda[i + 1] - s.lambda[i]), phi1 = std::expm1(hh), bh = std::expm1(hh);
    Tensor out = (x * (s.sigma[i + 1] / s.sigma[i])).add_(run.outputs[i], -s.alpha[i + 1] * phi1);
    if (order(run, i) == 1) return out;
    const double r = (s.lambda[i - 1] - s.lambda[i]) / -hh, c = -s.alpha[i + 1] * bh * 0.5 / r;
    return out.add_(run.outputs[i - 1], c).add_(run.outputs[i], -c);
  }

 private:
  static int order(const Run& run, size_t i) {
    const size_t n = run.t.size() - 1;
    return (i == 0 || n - i == 1) ? 1 : 2;
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, unipc, UniPC, "1.0.0",
               "UniPC (bh2, order 2): predictor-corrector reusing each evaluation, affine paths, NFE = steps",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1] (at least 2)"))
