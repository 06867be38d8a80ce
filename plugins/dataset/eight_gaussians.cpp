// The classic 8-Gaussians set (FFJORD, TorchCFM): centres at scale * (cos, sin)(k pi / 4), unit-variance
// noise scaled by std. Label: k; attribute: |x|.
#include <cmath>

#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/eight_gaussians.
struct EightOptions {
  double scale;  ///< distance of the centres from the origin (default 2)
  double std;    ///< standard deviation of each Gaussian (default 0.2)
  explicit EightOptions(const flowlab::Params& p) : scale(p.real("scale")), std(p.real("std")) {
    if (!(scale > 0)) throw flowlab::ParamError("dataset/eight_gaussians", "scale", fmt::format("must be > 0, got {}", scale));
    if (!(std >= 0)) throw flowlab::ParamError("dataset/eight_gaussians", "std", fmt::format("must be >= 0, got {}", std));
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

FLOWLAB_PLUGIN(dataset, eight_gaussians, EightGaussians, "1.0.0", "8 Gaussians on a circle (FFJORD/TorchCFM)",
               FLOWLAB_PARAM(scale, float, "2", "radius of the circle of centres")
               FLOWLAB_PARAM(std, float, "0.2", "standard deviation of each Gaussian"))
