// Min-SNR-gamma weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy",
// arXiv 2303.09556), converted from the loss the paper weights to flowlab's velocity loss ||v - u||^2.
//
// What the paper weights. Hang et al. define the weight on the x0-prediction (flowlab: x1, data) loss,
//   w_x1(t) = min(SNR(t), gamma),                 SNR = alpha^2 / sigma^2              (Sec. 3.4, Min-SNR-gamma),
// and for a network predicting the noise (flowlab: x0 = eps) the same objective is the eps-loss weight
//   w_eps(t) = min(SNR(t), gamma) / SNR(t)                                              (Sec. 4.2),
// since ||eps_hat - eps||^2 = SNR ||x1_hat - x1||^2. The authors' reference code (TiankaiHang/Min-SNR-Diffusion-
// Training, guided_diffusion/gaussian_diffusion.py, training_losses) applies min(snr, k) / snr to the eps loss,
// min(snr, k) to the x_start loss and min(snr, k) / (snr + 1) to the (Salimans-Ho, VP) v loss: three spellings of one
// objective. Default gamma = 5, the paper's recommendation. (Section numbers as the diffusers training scripts cite
// them; the formulas are checked against the reference code.)
//
// Conversion to the velocity loss (any affine path x_t = alpha x1 + sigma x0, u = alpha' x1 + sigma' x0). Solving
// [alpha sigma; alpha' sigma'] [x1; x0] = [x_t; v] for a prediction v_hat of u gives, with D = alpha' sigma -
// alpha sigma',
//   eps_hat - eps = -(alpha / D) (v_hat - u),     x1_hat - x1 = (sigma / D) (v_hat - u),
// so a weight w_eps on ||eps_hat - eps||^2 is the weight w_eps alpha^2 / D^2 on ||v_hat - u||^2 and w_x1 on
// ||x1_hat - x1||^2 is w_x1 sigma^2 / D^2. Both routes give the same weight on the velocity loss:
//   w(t) = min(SNR, gamma) sigma^2 / D^2 = min(alpha^2, gamma sigma^2) / (alpha' sigma - alpha sigma')^2,
// written in the last form so that sigma = 0 (SNR = inf) gives gamma * 0 instead of inf * 0.
//   rectified: D = 1, w = min(t^2, gamma (1 - t)^2);
//   cosine:    D = pi/2, w = min(sin^2(pi t/2), gamma cos^2(pi t/2)) / (pi/2)^2.
//
// Singular points. D = 0 where both alpha sigma' and sigma alpha' vanish: polynomial with n > 1 at t = 0, where
// w -> 0 but evaluates to 0/0. Rule: where the formula is not finite, w is taken at t clamped into
// [kTimeMargin, 1 - kTimeMargin] (the engine's time margin, path.hpp); if it is still not finite there, an error
// names the time. Everywhere else the formula is used as it stands.
//
// loss = velocity keeps flowlab 1.x's weight, min(SNR, gamma) directly on ||v - u||^2 (the formula as the training
// text 004 writes it in E[w(t) ||v - u||^2]); it is not Hang et al.'s objective.
#include <fmt/format.h>

#include "flowlab/weighting.hpp"

namespace {

using flowlab::Tensor;

/// Options of weighting/min_snr.
struct MinSnrOptions {
  double gamma;  ///< clip value, > 0
  bool paper;    ///< loss = eps: Hang et al.'s weight, converted; loss = velocity: min(SNR, gamma) on |v-u|^2
  explicit MinSnrOptions(const flowlab::Params& p) : gamma(p.real("gamma")), paper(p.str("loss") == "eps") {
    if (!(gamma > 0)) throw flowlab::ParamError(p.owner(), "gamma", fmt::format("must be > 0, got {}", gamma));
  }
};

class MinSnrWeighting final : public flowlab::Weighting {
 public:
  explicit MinSnrWeighting(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}
  Tensor weight(const Tensor& t, const flowlab::Path& path) const override {
    if (!path.affine())
      throw flowlab::Error(fmt::format("{}: needs an affine path (one with an alpha/sigma schedule)", owner_));
    if (!opt_.paper) return path.snr(t).clamp_max(opt_.gamma);
    Tensor w = on_velocity(t, path);
    const Tensor bad = at::isfinite(w).logical_not();
    if (bad.any().item<bool>()) {
      const Tensor inside = t.clamp(flowlab::kTimeMargin, 1 - flowlab::kTimeMargin);
      w = at::where(bad, on_velocity(inside, path), w);
      const Tensor still = at::isfinite(w).logical_not();
      if (still.any().item<bool>())
        throw flowlab::Error(
            fmt::format("{}: the weight on the velocity loss is not finite at t = {} on this path, even at t "
                        "clamped into [{}, 1 - {}]",
                        owner_, t.masked_select(still)[0].item<double>(), flowlab::kTimeMargin, flowlab::kTimeMargin));
    }
    return w;
  }

 private:
  /// min(alpha^2, gamma sigma^2) / (alpha' sigma - alpha sigma')^2: Hang et al.'s weight on ||v - u||^2.
  Tensor on_velocity(const Tensor& t, const flowlab::Path& path) const {
    const flowlab::Schedule s = path.schedule(t);
    const Tensor d = s.d_alpha * s.sigma - s.alpha * s.d_sigma;
    return at::minimum(s.alpha * s.alpha, opt_.gamma * s.sigma * s.sigma) / (d * d);
  }

  MinSnrOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(weighting, min_snr, MinSnrWeighting, "2.0.0",
               "Hang et al. 2023 min-SNR-gamma: min(SNR,gamma)/SNR on the eps loss, as the weight "
               "min(a^2, gamma s^2)/(a's - as')^2 on ||v-u||^2 (loss=velocity: min(SNR,gamma) on ||v-u||^2)",
               FLOWLAB_PARAM(gamma, float, "5", "clip value for the SNR, > 0") FLOWLAB_PARAM(
                   loss, enum(eps | velocity), "eps",
                   "eps: Hang et al.'s weight on the eps loss (= min(SNR,gamma) on the x1 loss), converted "
                   "to ||v-u||^2; velocity: min(SNR,gamma) on ||v-u||^2 itself (flowlab 1.x)"))
