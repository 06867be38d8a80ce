// The independent coupling: the k-th noise sample goes with the k-th data sample, both drawn independently
// (flow matching's default).
#include "flowlab/coupling.hpp"

namespace {

class IndependentCoupling final : public flowlab::Coupling {
 public:
  explicit IndependentCoupling(const flowlab::Params&) {}
  flowlab::Pairing pair(const flowlab::Tensor& x0, const flowlab::Tensor&) const override {
    const at::Tensor k = at::arange(x0.size(0), at::kLong);
    return {k, k};
  }
  bool keeps_order() const override { return true; }
};

}  // namespace

FLOWLAB_PLUGIN(coupling, independent, IndependentCoupling, "1.0.0", "pairs (x0[k], x1[k]) as drawn")
