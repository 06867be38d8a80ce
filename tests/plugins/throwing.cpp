// Test plugins whose constructors throw: a plain exception and a ParamError.
#include <stdexcept>

#include "flowlab/noise.hpp"

namespace {
class ThrowingNoise final : public flowlab::Noise {
 public:
  explicit ThrowingNoise(const flowlab::Params&) { throw std::runtime_error("cannot open /dev/flux-capacitor"); }
  flowlab::Tensor sample(at::IntArrayRef, const at::TensorOptions&) const override { return {}; }
};
class RangeNoise final : public flowlab::Noise {
 public:
  explicit RangeNoise(const flowlab::Params& p) {
    if (p.integer("n") <= 0) throw flowlab::ParamError("noise/range_check", "n", "must be > 0, got " + std::to_string(p.integer("n")));
  }
  flowlab::Tensor sample(at::IntArrayRef, const at::TensorOptions&) const override { return {}; }
};
}  // namespace

FLOWLAB_PLUGIN(noise, throws, ThrowingNoise, "1.0.0", "constructor throws")
FLOWLAB_PLUGIN(noise, range_check, RangeNoise, "1.0.0", "rejects n <= 0",
               FLOWLAB_PARAM(n, int, "1", "must be > 0"))
