// Test plugin compiled twice (two libraries) to declare the same kind/name.
#include "flowlab/noise.hpp"

namespace {
class DupNoise final : public flowlab::Noise {
 public:
  explicit DupNoise(const flowlab::Params&) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override { return at::zeros(shape, o); }
};
}  // namespace

FLOWLAB_PLUGIN(noise, dup, DupNoise, "1.0.0", "declared twice")
