// Two concentric circles (sklearn make_circles): radius 1 and `factor`, angle uniform, scaled by `scale`, plus
// noise. Label: 0 outer, 1 inner; attribute: |x|.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/circles.
struct CirclesOptions {
  double factor;  ///< inner / outer radius, in (0, 1)
  double scale;   ///< outer radius
  double noise;   ///< standard deviation of the added noise
  explicit CirclesOptions(const flowlab::Params& p)
      : factor(p.real("factor")), scale(p.real("scale")), noise(p.real("noise")) {
    if (!(factor > 0 && factor < 1))
      throw flowlab::ParamError(p.owner(), "factor", fmt::format("must be in (0, 1), got {}", factor));
    if (!(scale > 0)) throw flowlab::ParamError(p.owner(), "scale", fmt::format("must be > 0, got {}", scale));
    if (!(noise >= 0)) throw flowlab::ParamError(p.owner(), "noise", fmt::format("must be >= 0, got {}", noise));
  }
};

class Circles final : public flowlab::Dataset {
 public:
  explicit Circles(const flowlab::Params& p) : opt_(p) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 2; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor inner = at::randint(2, {n}, o.dtype(at::kLong));
    const at::Tensor radius = (1 - (1 - opt_.factor) * inner.to(o.dtype())) * opt_.scale;
    const at::Tensor a = at::rand({n}, o) * (2 * M_PI);
    const at::Tensor pts = at::stack({at::cos(a), at::sin(a)}, 1) * radius.unsqueeze(1);
    return flowlab::planar_batch(pts + opt_.noise * at::randn({n, 2}, o), inner);
  }

 private:
  CirclesOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, circles, Circles, "1.0.0", "two concentric circles (sklearn make_circles)",
               FLOWLAB_PARAM(factor, float, "0.5", "inner radius / outer radius, in (0, 1)")
                   FLOWLAB_PARAM(scale, float, "3", "outer radius")
                       FLOWLAB_PARAM(noise, float, "0.05", "standard deviation of the added noise"))
