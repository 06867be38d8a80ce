// Two spirals (FFJORD 2spirals): r = sqrt(u) * 3 pi, arm 0 at (-r cos r, r sin r), arm 1 its mirror image,
// divided by 3, plus Gaussian noise. Label: arm; attribute: |x|.
#include <cmath>

#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/spirals.
struct SpiralsOptions {
  double noise;  ///< standard deviation of the added noise
  explicit SpiralsOptions(const flowlab::Params& p) : noise(p.real("noise")) {
    if (!(noise >= 0)) throw flowlab::ParamError(p.owner(), "noise", fmt::format("must be >= 0, got {}", noise));
  }
};

class Spirals final : public flowlab::Dataset {
 public:
  explicit Spirals(const flowlab::Params& p) : opt_(p) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 2; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor arm = at::randint(2, {n}, o.dtype(at::kLong));
    const at::Tensor r = at::sqrt(at::rand({n}, o)) * (3 * M_PI);
    const at::Tensor sign = (1 - 2 * arm).to(o.dtype()).unsqueeze(1);
    const at::Tensor pts = at::stack({-r * at::cos(r), r * at::sin(r)}, 1) * sign / 3.0;
    return flowlab::planar_batch(pts + opt_.noise * at::randn({n, 2}, o), arm);
  }

 private:
  SpiralsOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, spirals, Spirals, "1.0.0", "two interleaved spirals (FFJORD)",
               FLOWLAB_PARAM(noise, float, "0.1", "standard deviation of the added noise"))
