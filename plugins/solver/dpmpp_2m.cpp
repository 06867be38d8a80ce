// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Algorithm 2): data-prediction multistep for an affine path,
// with D_i = x1 prediction of the field's value at t_i (Path::velocity_to_x1), lambda = log(alpha / sigma) through
// the path's schedule, h = lambda_{i+1} - lambda_i, r = h_{i-1} / h:
//   x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (e^{-h} - 1) (D_i + (D_i - D_{i-1}) / (2 r)).
// As diffusers' DPMSolverMultistepScheduler (dpmsolver++, midpoint, order 2, final_sigmas_type zero; with
// use_flow_sigmas and prediction_type flow_prediction on the rectified path): the first step and the last are
// first order (D_{i-1} term dropped), so the last step to sigma = 0 gives alpha_1 D_{N-1}, the x1 prediction; a
// start at alpha = 0 (t = 0) is lambda = -inf, e^{-h} = 0, and the next step's r = inf drops its D_{i-1} term.
// NFE = steps.
#include "flowlab/multistep.hpp"

namespace {

using flowlab::Tensor;

class DpmSolverPP2M final : public flowlab::MultistepSolver {
 public:
  explicit DpmSolverPP2M(const flowlab::Params& p) : MultistepSolver(p.integer("steps"), 2, p.owner()) {}

 protected:
  void prepare(Run& run) const override { run.schedule.emplace(*run.opt, run.t, owner()); }
  Tensor output(const Run& run, size_t i, const Tensor& x, const Tensor& v) const override {
    return run.schedule->x1(i, x, v);
  }
  Tensor advance(Run& run, size_t i, const Tensor& x, flowlab::Field&) const override {
    const auto& s = *run.schedule;
    const double h = s.lambda[i + 1] - s.lambda[i];
    const double phi = s.alpha[i + 1] * (std::exp(-h) - 1.0);
    Tensor out = (x * (s.sigma[i + 1] / s.sigma[i])).add_(run.outputs[i], -phi);
    if (i == 0 || i + 2 == run.t.size()) return out;  // first order: the first step and the last
    const double half_over_r = 0.5 * h / (s.lambda[i] - s.lambda[i - 1]);
    return out.add_(run.outputs[i], -phi * half_over_r).add_(run.outputs[i - 1], phi * half_over_r);
  }
};

}  // namespace

FLOWLAB_PLUGIN(solver, dpmpp_2m, DpmSolverPP2M, "1.0.0",
               "DPM-Solver++(2M), data prediction through the path's schedule (affine paths), NFE = steps",
               FLOWLAB_PARAM(steps, int, "10", "number of uniform steps on [0, 1] (at least 2)"))
