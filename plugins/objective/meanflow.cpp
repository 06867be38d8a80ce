// MeanFlow (Geng et al. 2025, arXiv 2505.13447): the network learns the average velocity over an interval,
// u(z_t, r, t) = 1/(t - r) int_r^t v(z_s, s) ds (eq. 3), trained on the MeanFlow identity
// u = v - (t - r) du/dt (eq. 6) with du/dt = v d_z u + d_t u (eq. 8), a Jacobian-vector product with tangent
// (v, 0, 1) in (z, r, t): L = E |u_theta - sg(u_tgt)|^2 (eq. 9), u_tgt = v_t - (t - r)(v_t d_z u_theta + d_t u_theta)
// (eqs. 10-11, v_t the conditional velocity).
//
// The paper puts data at t = 0; flowlab puts noise at 0. With a = 1 - t (where x sits) and the step d = t - r >= 0
// (so the interval ends at a + d = 1 - r), flowlab's network is U(x, a, d) = (x_{a+d} - x_a) / d along the flow, the
// forward form of the same average velocity, and the identity reads U = v(x_a, a) + d dU/da, with dU/da taken along
// the flow at a fixed end a + d: the JVP of U in (x, a, d) with tangent (v, 1, -1). The network is conditioned on
// (t, t - r), which the paper's table 1c ranks best. v is the path's u_t (model.path; x1 - x0 on the rectified path,
// the paper's). The JVP is forward-mode AD (flowlab::jvp), exact.
//
// (r, t) sampling (the paper's ablations and the official py-meanflow code): two logit-normal draws
// sigmoid(mu + sigma z), the larger is t and the smaller r; a share `ratio` of the rows keeps r != t and the rest set
// r = t (d = 0: plain flow matching). Defaults: lognorm(-0.4, 1.0), as reported for its ImageNet runs (a secondary
// source; its CIFAR-10 config uses (-2, 2) and ratio 0.75), and 25% (its fig. 4a: 0% fails at 1 NFE, 25% is best).
// model.time_sampler is not used.
// Adaptive weighting (the paper's and that code's): w = sg(1 / (|Delta|^2 + c)^p) per row, |Delta|^2 summed over the
// row; p = 1 (best in its fig. 4e), c = 1e-3. model.weighting is not used either.
// Sampling: x_{a+d} = x_a + d U(x_a, a, d) (eq. 12 forward in time); one step is x1 = x0 + U(x0, 0, 1)
// (solver/few_step).
#include <fmt/format.h>

#include "flowlab/objective.hpp"

namespace {

using flowlab::Tensor;

/// Options of objective/meanflow.
struct MeanFlowOptions {
  double mu, sigma;  ///< logit-normal location and scale of the two time draws
  double ratio;      ///< share of rows with r != t
  double p, c;       ///< adaptive weighting 1 / (|Delta|^2 + c)^p
  explicit MeanFlowOptions(const flowlab::Params& q)
      : mu(q.real("mu")), sigma(q.real("sigma")), ratio(q.real("ratio")), p(q.real("p")), c(q.real("c")) {
    if (!(sigma > 0)) throw flowlab::ParamError(q.owner(), "sigma", fmt::format("must be > 0, got {}", sigma));
    if (!(ratio >= 0 && ratio <= 1))
      throw flowlab::ParamError(q.owner(), "ratio", fmt::format("must be in [0, 1], got {}", ratio));
    if (!(p >= 0)) throw flowlab::ParamError(q.owner(), "p", fmt::format("must be >= 0, got {}", p));
    if (!(c > 0)) throw flowlab::ParamError(q.owner(), "c", fmt::format("must be > 0, got {}", c));
  }
};

class MeanFlow final : public flowlab::Objective {
 public:
  explicit MeanFlow(const flowlab::Params& p) : opt_(p) {}
  bool step_input() const override { return true; }
  bool accepts_teacher_pairs() const override { return false; }
  double calls_per_row() const override { return 2; }  // one forward-mode pass: the value and its tangent

  flowlab::ObjectiveDraw draw(const Tensor& x0, const Tensor& x1, const flowlab::ObjectiveContext& ctx) const override {
    const int64_t b = x0.size(0);
    const Tensor u1 = at::sigmoid(opt_.mu + opt_.sigma * at::randn({b}, x0.options()));
    const Tensor u2 = at::sigmoid(opt_.mu + opt_.sigma * at::randn({b}, x0.options()));
    Tensor t_mf = at::maximum(u1, u2), r_mf = at::minimum(u1, u2);
    const Tensor keep = at::rand({b}, x0.options()) < opt_.ratio;  // rows with r != t
    r_mf = at::where(keep, r_mf, t_mf);
    flowlab::ObjectiveDraw d;
    d.t = ctx.path->clamp_to_domain(1 - t_mf);  // flowlab's time of x: noise at 0
    d.d = at::clamp_max(t_mf - r_mf, 1 - d.t);  // the step, its end a + d <= 1
    const flowlab::PathSample s = ctx.path->sample(x0, x1, d.t);
    d.xt = s.xt;
    d.target = s.ut;
    return d;
  }

  Tensor loss(const flowlab::ObjectiveDraw& d, const flowlab::Condition& cond, flowlab::Architecture& model,
              const flowlab::ObjectiveContext&) const override {
    // U and dU/da along the flow at a fixed end: tangent (v, 1, -1) in (x, a, d).
    const auto [u, dudt] =
        flowlab::jvp([&](const std::vector<Tensor>& in) { return model.forward_step(in[0], in[1], in[2], cond); },
                     {d.xt, d.t, d.d}, {d.target, at::ones_like(d.t), -at::ones_like(d.d)});
    const Tensor uf = u.scalar_type() == d.target.scalar_type() ? u : u.to(d.target.scalar_type());
    std::vector<int64_t> shape(static_cast<size_t>(d.xt.dim()), 1);
    shape[0] = -1;
    const Tensor target = (d.target + d.d.reshape(shape) * dudt.to(d.target.scalar_type())).detach();
    const Tensor sq = (uf - target).pow(2).flatten(1).sum(1);
    if (opt_.p == 0) return sq.mean();
    return (sq / (sq.detach() + opt_.c).pow(opt_.p)).mean();
  }

 private:
  MeanFlowOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(objective, meanflow, MeanFlow, "1.0.0",
               "MeanFlow: the average velocity U(x, t, d) from the MeanFlow identity by a JVP, for 1-step sampling",
               FLOWLAB_PARAM(mu, float, "-0.4", "logit-normal location of the two time draws (paper's time convention)")
                   FLOWLAB_PARAM(sigma, float, "1", "logit-normal scale of the two time draws")
                       FLOWLAB_PARAM(ratio, float, "0.25", "share of rows with r != t (the rest train at d = 0)")
                           FLOWLAB_PARAM(p, float, "1",
                                         "adaptive weighting power p in 1 / (|Delta|^2 + c)^p (0: plain squared error)")
                               FLOWLAB_PARAM(c, float, "0.001", "adaptive weighting constant c"))
