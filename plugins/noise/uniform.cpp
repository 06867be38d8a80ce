// Uniform base distribution on the box [low, high)^D: log p(x) = -D log(high - low) inside, -inf outside.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "flowlab/noise.hpp"

namespace {

/// Options of noise/uniform.
struct UniformNoiseOptions {
  double low;   ///< lower bound
  double high;  ///< upper bound, > low
  explicit UniformNoiseOptions(const flowlab::Params& p) : low(p.real("low")), high(p.real("high")) {
    if (!(high > low))
      throw flowlab::ParamError(p.owner(), "high", fmt::format("must be > low ({}), got {}", low, high));
  }
};

class UniformNoise final : public flowlab::Noise {
 public:
  explicit UniformNoise(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    return at::rand(shape, o) * (opt_.high - opt_.low) + opt_.low;
  }
  flowlab::Tensor log_prob(const flowlab::Tensor& x) const override {
    const flowlab::Tensor flat = x.to(at::kDouble).flatten(1);
    const flowlab::Tensor inside = ((flat >= opt_.low) & (flat < opt_.high)).all(1);
    return at::where(inside,
                     at::full({flat.size(0)}, -double(flat.size(1)) * std::log(opt_.high - opt_.low), flat.options()),
                     at::full({flat.size(0)}, -std::numeric_limits<double>::infinity(), flat.options()));
  }

 private:
  UniformNoiseOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(noise, uniform, UniformNoise, "1.0.0", "x0 ~ U[low, high)^D",
               FLOWLAB_PARAM(low, float, "-1", "lower bound") FLOWLAB_PARAM(high, float, "1", "upper bound, > low"))
