// Shortcut models (Frans, Hafner, Levine & Abbeel 2024, "One Step Diffusion via Shortcut Models", arXiv 2410.12557):
// one network s(x_t, t, d) conditioned on the step size d, with x_{t+d} ~ x_t + s(x_t, t, d) d. Noise is at t = 0,
// data at t = 1, as in flowlab. The loss (the paper's combined objective, sec. 3) has two parts:
//  * flow matching at d = 0: |s(x_t, t, 0) - (x1 - x0)|^2 (the path's u_t in general), t from model.time_sampler;
//  * self-consistency on a share `bootstrap` of each batch (the paper's k = 1/4): for a big step 2d,
//    s(x_t, t, 2d) ~ sg(s_target), s_target = (s(x_t, t, d) + s(x'_{t+d}, t + d, d)) / 2,
//    x'_{t+d} = x_t + d s(x_t, t, d).
// Big steps 2d are the powers of two 2/M, 4/M, ..., 1 (M = max_steps, the paper's 128), each equally likely, and t is
// a multiple of 2d in [0, 1 - 2d] (the reference code's grid). The bootstrap targets come from the current weights
// under a stop-gradient (the reference code can use its EMA; the paper's text uses the model itself). d is embedded
// like t (the architecture's step input), where the reference code embeds log2(1/d).
// Sampling: N steps of x <- x + s(x, t, 1/N) / N (solver/few_step), N = 1 for one step.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/objective.hpp"

namespace {

using flowlab::Tensor;

class Shortcut final : public flowlab::Objective {
 public:
  explicit Shortcut(const flowlab::Params& p) : share_(p.real("bootstrap")), max_steps_(p.integer("max_steps")) {
    if (!(share_ >= 0 && share_ < 1))
      throw flowlab::ParamError(p.owner(), "bootstrap", fmt::format("must be in [0, 1), got {}", share_));
    if (max_steps_ < 2 || (max_steps_ & (max_steps_ - 1)) != 0)
      throw flowlab::ParamError(p.owner(), "max_steps", fmt::format("must be a power of two >= 2, got {}", max_steps_));
    levels_ = static_cast<int64_t>(std::lround(std::log2(double(max_steps_))));  // big steps 2/M ... 1
  }
  bool step_input() const override { return true; }
  bool accepts_teacher_pairs() const override { return false; }
  double calls_per_row() const override { return 1 + 2 * share_; }  // two target forwards on the bootstrap rows

  // Rows [0, n_boot) get self-consistency targets (d = 2 * half-step in ObjectiveDraw::d), the rest flow matching.
  flowlab::ObjectiveDraw draw(const Tensor& x0, const Tensor& x1, const flowlab::ObjectiveContext& ctx) const override {
    const int64_t b = x0.size(0);
    const int64_t n_boot = static_cast<int64_t>(std::floor(share_ * double(b)));
    const auto o = x0.options();
    // Big step 2d = 2^-k, k uniform in {0, ..., levels - 1}; t = j 2d, j uniform in {0, ..., 2^k - 1}.
    const Tensor k = at::randint(levels_, {n_boot}, o.dtype(at::kLong));
    const Tensor big = at::pow(2.0, -k.to(o.dtype()));
    const Tensor j = at::floor(at::rand({n_boot}, o) * at::pow(2.0, k.to(o.dtype())));
    const Tensor t_boot = j * big;
    const Tensor t_fm = ctx.path->clamp_to_domain(ctx.time_sampler->sample(b - n_boot, o));
    flowlab::ObjectiveDraw d;
    d.t = ctx.path->clamp_to_domain(at::cat({t_boot, t_fm}));
    d.d = at::cat({big, at::zeros({b - n_boot}, o)});
    const flowlab::PathSample s = ctx.path->sample(x0, x1, d.t);
    d.xt = s.xt;
    d.target = s.ut;
    return d;
  }

  Tensor loss(const flowlab::ObjectiveDraw& d, const flowlab::Condition& cond, flowlab::Architecture& model,
              const flowlab::ObjectiveContext& ctx) const override {
    const int64_t b = d.xt.size(0);
    const int64_t n_boot = d.d.gt(0).sum().item<int64_t>();
    Tensor target = d.target;
    if (n_boot > 0) {
      at::NoGradGuard no_grad;
      const Tensor x = d.xt.narrow(0, 0, n_boot), t = d.t.narrow(0, 0, n_boot), half = d.d.narrow(0, 0, n_boot) / 2;
      const flowlab::Condition c = rows(cond, n_boot);
      std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
      shape[0] = -1;
      const Tensor s1 = model.forward_step(x, t, half, c).to(d.target.scalar_type());
      const Tensor x2 = x + half.reshape(shape) * s1;
      const Tensor s2 = model.forward_step(x2, t + half, half, c).to(d.target.scalar_type());
      target = at::cat({(s1 + s2) / 2, d.target.narrow(0, n_boot, b - n_boot)});
    }
    const Tensor s = model.forward_step(d.xt, d.t, d.d, cond);
    return flowlab::weighted_squared_error(s, target.detach(), d.t, ctx);
  }

 private:
  static flowlab::Condition rows(const flowlab::Condition& c, int64_t n) {
    flowlab::Condition out;
    if (c.label.defined()) out.label = c.label.narrow(0, 0, n);
    if (c.attr.defined()) out.attr = c.attr.narrow(0, 0, n);
    if (c.drop.defined()) out.drop = c.drop.narrow(0, 0, n);
    return out;
  }
  double share_;
  int64_t max_steps_, levels_ = 1;
};

}  // namespace

FLOWLAB_PLUGIN(objective, shortcut, Shortcut, "1.0.0",
               "shortcut model s(x, t, d): flow matching at d = 0 plus self-consistency targets at steps 2d",
               FLOWLAB_PARAM(bootstrap, float, "0.25", "share of each batch with self-consistency targets")
                   FLOWLAB_PARAM(max_steps, int, "128", "M: the smallest step is 1/M (a power of two)"))
