// The classic 8-Gaussians set (FFJORD, TorchCFM): centres at scale * (cos, sin)(k pi / 4), unit-variance
// noise scaled by std. Label: k; attribute: |x|.
//
// preset: torchcfm is TorchCFM's sample_8gaussians (torchcfm.utils): centres at radius 5, each drawn uniformly
// (torch.multinomial over 8 equal weights), plus MultivariateNormal(0, sqrt(0.1) I), i.e. std 0.1^(1/4) ~ 0.5623
// per coordinate. It sets scale = 5 and std = 0.1^(1/4) exactly; with it, scale and std must stay at their
// defaults (a ParamError otherwise). The distribution is TorchCFM's; the random stream is flowlab's (torch's
// default generator, drawn as below), so samples are not bit-identical to TorchCFM's for a seed.
#include <cmath>

#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/eight_gaussians.
struct EightOptions {
  double scale;  ///< distance of the centres from the origin
  double std;    ///< standard deviation of each Gaussian
  explicit EightOptions(const flowlab::Params& p) : scale(p.real("scale")), std(p.real("std")) {
    if (!(scale > 0)) throw flowlab::ParamError(p.owner(), "scale", fmt::format("must be > 0, got {}", scale));
    if (!(std >= 0)) throw flowlab::ParamError(p.owner(), "std", fmt::format("must be >= 0, got {}", std));
    if (p.str("preset") == "torchcfm") {
      // TorchCFM fixes both: refuse a value that the preset would silently override.
      if (scale != 2.0)
        throw flowlab::ParamError(p.owner(), "scale",
                                  fmt::format("is fixed to 5 by preset torchcfm; leave it unset (got {})", scale));
      if (std != 0.2)
        throw flowlab::ParamError(
            p.owner(), "std", fmt::format("is fixed to 0.1^(1/4) by preset torchcfm; leave it unset (got {})", std));
      scale = 5.0;
      std = std::sqrt(std::sqrt(0.1));  // covariance sqrt(0.1) I
    }
  }
};

class EightGaussians final : public flowlab::Dataset {
 public:
  explicit EightGaussians(const flowlab::Params& p) : opt_(p) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 8; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor k = at::randint(8, {n}, o.dtype(at::kLong));
    const at::Tensor angle = k.to(o.dtype()) * (M_PI / 4);
    const at::Tensor centre = at::stack({at::cos(angle), at::sin(angle)}, 1) * opt_.scale;
    return flowlab::planar_batch(centre + opt_.std * at::randn({n, 2}, o), k);
  }

 private:
  EightOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, eight_gaussians, EightGaussians, "1.1.0", "8 Gaussians on a circle (FFJORD/TorchCFM)",
               FLOWLAB_PARAM(scale, float, "2", "radius of the circle of centres")
                   FLOWLAB_PARAM(std, float, "0.2", "standard deviation of each Gaussian") FLOWLAB_PARAM(
                       preset, enum(none | torchcfm), "none",
                       "torchcfm: TorchCFM's sample_8gaussians (scale 5, std 0.1^(1/4)); none: scale and std"))
