// Flow matching (Lipman et al. 2023, eq. 9 with the conditional path of the `path` plugin; Liu et al.'s rectified flow
// on the rectified path): E_{t, (x0, x1)} w(t) |v(x_t, t) - u_t(x_t | x0, x1)|^2, t from the time sampler clamped into
// the path's domain, w(t) from the weighting. The trial's default objective.
// loss: pseudo_huber is 2-Rectified Flow++'s (Lee et al. 2024, arXiv 2405.20320, and its code sangyun884/rfpp,
// after Song & Dhariwal 2023's consistency training): per row sqrt(|v - u|^2 + c^2) - c, the squared norm over the
// row's D elements, with c = 0.00054 sqrt(D) by default (iCT's value; the rfpp code uses 0.00054 D and divides the
// loss by D; huber_c sets any c). Near 0 it is |v - u|^2 / (2c); far out |v - u| - c.
// loss: feature_huber is 2-RF++'s LPIPS-Huber with LPIPS (whose weights cannot be downloaded here) replaced by a
// feature net of flowlab's (`features`, e.g. builtin:digits): per row, in flowlab's time (2-RF++'s t is 1 - t),
//   t (sqrt(|v - u|^2 + c^2) - c) + mean_F (phi(x1_hat) - phi(x1))^2,  x1_hat = the data prediction of v,
// with x1 and x1_hat from the path's conversions (Path::velocity_to_x1; affine paths). The feature net is fixed.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/objective.hpp"

namespace {

using flowlab::Tensor;

class FlowMatching final : public flowlab::Objective {
 public:
  explicit FlowMatching(const flowlab::Params& p)
      : owner_(p.owner()), loss_(p.str("loss")), c_(p.real("huber_c")), features_(p.str("features")) {
    if (!(c_ >= 0)) throw flowlab::ParamError(owner_, "huber_c", fmt::format("must be >= 0, got {}", c_));
    if (loss_ == "feature_huber" && features_.empty())
      throw flowlab::ParamError(owner_, "features",
                                "must name a feature net for loss feature_huber (builtin:digits, builtin:fashion_mnist "
                                "or torchscript:PATH)");
    if (loss_ != "feature_huber" && !features_.empty())
      throw flowlab::ParamError(owner_, "features",
                                fmt::format("only loss feature_huber uses features, and loss is {}", loss_));
  }
  std::string features() const override { return features_; }
  double calls_per_row() const override { return 1; }

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
    if (loss_ == "l2") return flowlab::weighted_squared_error(v, d.target, d.t, ctx);
    const Tensor vf = v.scalar_type() == d.target.scalar_type() ? v : v.to(d.target.scalar_type());
    const Tensor diff = vf - d.target;
    const double c = c_ > 0 ? c_ : 0.00054 * std::sqrt(double(diff[0].numel()));
    Tensor per_row = (diff.pow(2).flatten(1).sum(1) + c * c).sqrt() - c;
    if (loss_ == "feature_huber") {
      if (!ctx.path->affine())
        throw flowlab::Error(fmt::format("{}: loss feature_huber predicts x1 through the path's schedule, which needs "
                                         "an affine path",
                                         owner_));
      const Tensor x1_hat = ctx.path->velocity_to_x1(d.xt, vf, d.t);
      const Tensor x1 = ctx.path->velocity_to_x1(d.xt, d.target, d.t);
      const Tensor f = ctx.features(x1_hat), f1 = ctx.features(x1).detach();
      per_row = d.t * per_row + (f - f1).pow(2).mean(1);
    }
    return ctx.uniform_weight ? per_row.mean() : (ctx.weighting->weight(d.t, *ctx.path) * per_row).mean();
  }

 private:
  std::string owner_;
  std::string loss_;      ///< l2, pseudo_huber or feature_huber
  double c_;              ///< huber_c; 0: 0.00054 sqrt(D)
  std::string features_;  ///< feature_huber's feature net
};

}  // namespace

FLOWLAB_PLUGIN(
    objective, flow_matching, FlowMatching, "1.0.0",
    "regress v(x_t, t) on the path's velocity u_t (squared error, pseudo-Huber or feature-Huber), weighted by w(t)",
    FLOWLAB_PARAM(
        loss, enum(l2 | pseudo_huber | feature_huber), "l2",
        "squared error; 2-RF++'s pseudo-Huber per row; or its LPIPS-Huber with a flowlab feature net for LPIPS")
        FLOWLAB_PARAM(huber_c, float, "0", "pseudo-Huber's c; 0: 0.00054 sqrt(D), D the elements of one sample")
            FLOWLAB_PARAM(features, string, "",
                          "feature_huber's feature net: builtin:digits, builtin:fashion_mnist or torchscript:PATH"))
