// Inverse-SNR weighting, on the velocity loss: w(t) = 1 / SNR(t) = sigma_t^2 / alpha_t^2 multiplies ||v - u||^2,
// clipped at max_weight because it diverges at the noise end (alpha_0 = 0). Needs an affine path.
//
// Source: the training text (shared/reference 004, "Flow Matching Training", Weighted Loss, item 2 "SNR-based:
// w(t) = 1/SNR(t) (from diffusion)"). The text writes it inside L_weighted = E[w(t) ||v_theta(x_t, t) - u_t||^2],
// i.e. on the velocity loss, and names no paper, so there is no other loss to convert from: flowlab keeps it on
// ||v - u||^2. SNR = alpha^2 / sigma^2 does not depend on which end is called t = 0, so the text's convention (data
// at t = 0) needs no mapping. For comparison only (not what this plugin does): 1/SNR on the eps loss would be the
// plain x1-prediction loss, sigma^2 / (alpha' sigma - alpha sigma')^2 on ||v - u||^2 (see weighting/min_snr).
//   rectified: w = (1 - t)^2 / t^2;  cosine: w = cot^2(pi t / 2); both clipped at max_weight.
#include <fmt/format.h>

#include "flowlab/weighting.hpp"

namespace {

/// Options of weighting/snr.
struct SnrOptions {
  double max_weight;  ///< upper clip of 1/SNR, > 0
  explicit SnrOptions(const flowlab::Params& p) : max_weight(p.real("max_weight")) {
    if (!(max_weight > 0))
      throw flowlab::ParamError(p.owner(), "max_weight", fmt::format("must be > 0, got {}", max_weight));
  }
};

class SnrWeighting final : public flowlab::Weighting {
 public:
  explicit SnrWeighting(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}
  flowlab::Tensor weight(const flowlab::Tensor& t, const flowlab::Path& path) const override {
    if (!path.affine())
      throw flowlab::Error(fmt::format("{}: needs an affine path (one with an alpha/sigma schedule)", owner_));
    return (1 / path.snr(t)).clamp_max(opt_.max_weight);
  }

 private:
  SnrOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(weighting, snr, SnrWeighting, "1.0.0",
               "1/SNR = sigma^2/alpha^2 on the velocity loss ||v-u||^2, as training text 004 writes it (no paper "
               "given), clipped at max_weight",
               FLOWLAB_PARAM(max_weight, float, "1e4", "upper clip of 1/SNR (it diverges at t = 0)"))
