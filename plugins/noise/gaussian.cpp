// Standard Gaussian base distribution: x0 ~ N(0, I).
#include "flowlab/noise.hpp"

namespace {

class GaussianNoise final : public flowlab::Noise {
 public:
  explicit GaussianNoise(const flowlab::Params&) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    return at::randn(shape, o);
  }
};

}  // namespace

FLOWLAB_PLUGIN(noise, gaussian, GaussianNoise, "1.0.0", "x0 ~ N(0, I)")
