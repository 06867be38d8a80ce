// Standard Gaussian base distribution: x0 ~ N(0, I), log p(x) = -|x|^2 / 2 - (D / 2) log(2 pi).
#include <cmath>

#include "flowlab/noise.hpp"

namespace {

class GaussianNoise final : public flowlab::Noise {
 public:
  explicit GaussianNoise(const flowlab::Params&) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    return at::randn(shape, o);
  }
  flowlab::Tensor log_prob(const flowlab::Tensor& x) const override {
    const flowlab::Tensor flat = x.to(at::kDouble).flatten(1);
    return -0.5 * flat.pow(2).sum(1) - 0.5 * double(flat.size(1)) * std::log(2 * M_PI);
  }
};

}  // namespace

FLOWLAB_PLUGIN(noise, gaussian, GaussianNoise, "1.0.0", "x0 ~ N(0, I)")
