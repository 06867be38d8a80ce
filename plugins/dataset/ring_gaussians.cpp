// Ring of Gaussians (the textbook chapter's 2D example): mode k ~ U{0..modes-1}, centre
// radius * (cos 2 pi k / modes, sin 2 pi k / modes), x = centre + std * N(0, I). Label: k; attribute: |x|.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/ring_gaussians.
struct RingOptions {
  int64_t modes;  ///< number of Gaussians on the ring
  double radius;  ///< ring radius
  double std;     ///< standard deviation of each Gaussian
  explicit RingOptions(const flowlab::Params& p)
      : modes(p.integer("modes")), radius(p.real("radius")), std(p.real("std")) {
    if (modes <= 0) throw flowlab::ParamError(p.owner(), "modes", fmt::format("must be > 0, got {}", modes));
    if (!(radius >= 0)) throw flowlab::ParamError(p.owner(), "radius", fmt::format("must be >= 0, got {}", radius));
    if (!(std >= 0)) throw flowlab::ParamError(p.owner(), "std", fmt::format("must be >= 0, got {}", std));
  }
};

class RingGaussians final : public flowlab::Dataset {
 public:
  // The centres once, as sample() computed them per row: angle and cos/sin in float, then times the radius.
  explicit RingGaussians(const flowlab::Params& p) : opt_(p) {
    const at::Tensor angle = at::arange(opt_.modes, at::kLong).to(at::kFloat) * (2 * M_PI / double(opt_.modes));
    centres_ = at::stack({at::cos(angle), at::sin(angle)}, 1) * opt_.radius;
  }
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return opt_.modes; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor k = at::randint(opt_.modes, {n}, o.dtype(at::kLong));
    const at::Tensor centre = centres_.to(o.device(), o.dtype().toScalarType()).index_select(0, k);
    return flowlab::planar_batch(at::randn({n, 2}, o).mul_(opt_.std).add_(centre), k);  // 5 ops instead of 9
  }

 private:
  RingOptions opt_;
  at::Tensor centres_;  // [modes, 2] float, CPU
};

}  // namespace

FLOWLAB_PLUGIN(dataset, ring_gaussians, RingGaussians, "1.0.0", "Gaussians evenly spaced on a ring",
               FLOWLAB_PARAM(modes, int, "8", "number of Gaussians") FLOWLAB_PARAM(radius, float, "4", "ring radius")
                   FLOWLAB_PARAM(std, float, "0.3", "standard deviation of each Gaussian"))
