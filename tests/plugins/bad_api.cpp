// Test plugin built for a plugin API version that does not exist.
#include "flowlab/solver.hpp"

namespace {
class Never final : public flowlab::Solver {
 public:
  explicit Never(const flowlab::Params&) : Solver("solver/bad_api") {}

 protected:
  void integrate(const flowlab::Tensor&, flowlab::Field&, const flowlab::SampleOptions&,
                 flowlab::SampleResult&) const override {}
};
}  // namespace

FLOWLAB_PLUGIN_RECORD(999, solver, bad_api, Never, "1.0.0", "built for API 999")
