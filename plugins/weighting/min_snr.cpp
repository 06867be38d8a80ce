// Min-SNR weighting (Hang et al. 2023; training text "Min-SNR"): w(t) = min(SNR(t), gamma). Needs an affine path.
#include <fmt/format.h>

#include "flowlab/weighting.hpp"

namespace {

/// Options of weighting/min_snr.
struct MinSnrOptions {
  double gamma;  ///< clip value, > 0 (default 5)
  explicit MinSnrOptions(const flowlab::Params& p) : gamma(p.real("gamma")) {
    if (!(gamma > 0)) throw flowlab::ParamError("weighting/min_snr", "gamma", fmt::format("must be > 0, got {}", gamma));
  }
};

class MinSnrWeighting final : public flowlab::Weighting {
 public:
  explicit MinSnrWeighting(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor weight(const flowlab::Tensor& t, const flowlab::Path& path) const override {
    if (!path.affine())
      throw flowlab::Error("weighting/min_snr: needs an affine path (one with an alpha/sigma schedule)");
    return path.snr(t).clamp_max(opt_.gamma);
  }

 private:
  MinSnrOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(weighting, min_snr, MinSnrWeighting, "1.0.0", "w(t) = min(SNR(t), gamma)",
               FLOWLAB_PARAM(gamma, float, "5", "clip value for the SNR, > 0"))
