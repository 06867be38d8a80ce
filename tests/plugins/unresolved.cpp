// Test plugin that needs a symbol no library provides, so loading it fails in the dynamic loader.
#include "flowlab/noise.hpp"

extern "C" int flowlab_test_symbol_nobody_defines();

namespace {
class UnresolvedNoise final : public flowlab::Noise {
 public:
  explicit UnresolvedNoise(const flowlab::Params&) { flowlab_test_symbol_nobody_defines(); }
  flowlab::Tensor sample(at::IntArrayRef, const at::TensorOptions&) const override { return {}; }
};
}  // namespace

FLOWLAB_PLUGIN(noise, unresolved, UnresolvedNoise, "1.0.0", "needs a missing symbol")
