// Inverse-SNR weighting (training text, "SNR-based"): w(t) = 1 / SNR(t) = sigma_t^2 / alpha_t^2, clipped at
// max_weight because it diverges at the noise end (alpha_0 = 0). Needs an affine path.
#include <fmt/format.h>

#include "flowlab/weighting.hpp"

namespace {

/// Options of weighting/snr.
struct SnrOptions {
  double max_weight;  ///< upper clip of 1/SNR, > 0 (default 1e4)
  explicit SnrOptions(const flowlab::Params& p) : max_weight(p.real("max_weight")) {
    if (!(max_weight > 0))
      throw flowlab::ParamError("weighting/snr", "max_weight", fmt::format("must be > 0, got {}", max_weight));
  }
};

class SnrWeighting final : public flowlab::Weighting {
 public:
  explicit SnrWeighting(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor weight(const flowlab::Tensor& t, const flowlab::Path& path) const override {
    if (!path.affine()) throw flowlab::Error("weighting/snr: needs an affine path (one with an alpha/sigma schedule)");
    return (1 / path.snr(t)).clamp_max(opt_.max_weight);
  }

 private:
  SnrOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(weighting, snr, SnrWeighting, "1.0.0", "w(t) = 1/SNR(t) = sigma^2/alpha^2, clipped at max_weight",
               FLOWLAB_PARAM(max_weight, float, "1e4", "upper clip of 1/SNR (it diverges at t = 0)"))
