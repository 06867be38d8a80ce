// Flow matching (Lipman et al. 2023, eq. 9 with the conditional path of the `path` plugin; Liu et al.'s rectified flow
// on the rectified path): E_{t, (x0, x1)} w(t) |v(x_t, t) - u_t(x_t | x0, x1)|^2, t from the time sampler clamped into
// the path's domain, w(t) from the weighting. The trial's default objective.
// loss: pseudo_huber is 2-Rectified Flow++'s (Lee et al. 2024, sec. 4.2, from Song & Dhariwal 2023's consistency
// training): per row, sqrt(|v - u|^2 + c^2) - c with the squared norm over the row's D elements, and c = 0.00054 sqrt(D)
// by default (their value, for images; huber_c sets another). Near 0 it is |v - u|^2 / (2c); far out, |v - u| - c.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/objective.hpp"

namespace {

using flowlab::Tensor;

class FlowMatching final : public flowlab::Objective {
 public:
  explicit FlowMatching(const flowlab::Params& p) : huber_(p.str("loss") == "pseudo_huber"), c_(p.real("huber_c")) {
    if (!(c_ >= 0)) throw flowlab::ParamError(p.owner(), "huber_c", fmt::format("must be >= 0, got {}", c_));
  }

  flowlab::ObjectiveDraw draw(const Tensor& x0, const Tensor& x1, const flowlab::ObjectiveContext& ctx) const override {
    const Tensor t = ctx.path->clamp_to_domain(ctx.time_sampler->sample(x0.size(0), x0.options()));
    const flowlab::PathSample s = ctx.path->sample(x0, x1, t);
    flowlab::ObjectiveDraw d;
    d.t = t;
    d.xt = s.xt;
    d.target = s.ut;
    return d;
  }

  Tensor loss(const flowlab::ObjectiveDraw& d, const flowlab::Condition& cond, flowlab::Architecture& model,
              const flowlab::ObjectiveContext& ctx) const override {
    const Tensor v = model.forward(d.xt, d.t, cond);
    if (!huber_) return flowlab::weighted_squared_error(v, d.target, d.t, ctx);
    const Tensor diff = (v.scalar_type() == d.target.scalar_type() ? v : v.to(d.target.scalar_type())) - d.target;
    const double c = c_ > 0 ? c_ : 0.00054 * std::sqrt(double(diff[0].numel()));
    const Tensor per_row = (diff.pow(2).flatten(1).sum(1) + c * c).sqrt() - c;
    return ctx.uniform_weight ? per_row.mean() : (ctx.weighting->weight(d.t, *ctx.path) * per_row).mean();
  }

 private:
  bool huber_;  ///< loss: pseudo_huber
  double c_;    ///< huber_c; 0: 0.00054 sqrt(D)
};

}  // namespace

FLOWLAB_PLUGIN(objective, flow_matching, FlowMatching, "1.0.0",
               "regress v(x_t, t) on the path's velocity u_t (squared error or pseudo-Huber), weighted by w(t)",
               FLOWLAB_PARAM(loss, enum(l2|pseudo_huber), "l2", "squared error, or 2-RF++'s pseudo-Huber per row")
               FLOWLAB_PARAM(huber_c, float, "0", "pseudo-Huber's c; 0: 0.00054 sqrt(D), D the elements of one sample"))
