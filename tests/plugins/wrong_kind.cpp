// Test plugin declared as a solver but implementing the noise interface (registry must refuse the cast).
#include "flowlab/noise.hpp"

namespace {
class NotASolver final : public flowlab::Noise {
 public:
  explicit NotASolver(const flowlab::Params&) {}
  flowlab::Tensor sample(at::IntArrayRef, const at::TensorOptions&) const override { return {}; }
};
}  // namespace

FLOWLAB_PLUGIN_RECORD(FLOWLAB_API_VERSION, solver, not_a_solver, NotASolver, "1.0.0", "a noise in disguise")
