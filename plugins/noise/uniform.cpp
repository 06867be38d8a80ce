// Uniform base distribution on the box [low, high)^D.
#include <fmt/format.h>

#include "flowlab/noise.hpp"

namespace {

/// Options of noise/uniform.
struct UniformNoiseOptions {
  double low;   ///< lower bound (default -1)
  double high;  ///< upper bound, > low (default 1)
  explicit UniformNoiseOptions(const flowlab::Params& p) : low(p.real("low")), high(p.real("high")) {
    if (!(high > low))
      throw flowlab::ParamError("noise/uniform", "high", fmt::format("must be > low ({}), got {}", low, high));
  }
};

class UniformNoise final : public flowlab::Noise {
 public:
  explicit UniformNoise(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    return at::rand(shape, o) * (opt_.high - opt_.low) + opt_.low;
  }

 private:
  UniformNoiseOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(noise, uniform, UniformNoise, "1.0.0", "x0 ~ U[low, high)^D",
               FLOWLAB_PARAM(low, float, "-1", "lower bound")
               FLOWLAB_PARAM(high, float, "1", "upper bound, > low"))
