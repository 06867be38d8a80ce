// Minibatch optimal transport (Tong et al., TorchCFM's exact OT-CFM): within each batch, the assignment of noise
// to data that minimises the total squared Euclidean distance, solved exactly (flowlab::optimal_assignment:
// shortest augmenting paths, as SciPy's linear_sum_assignment). By default the batch is re-paired by that
// permutation (every sample used once); with `resample: true` B pairs are drawn with replacement from the plan, as
// TorchCFM's OTPlanSampler does.
#include <fmt/format.h>

#include "flowlab/coupling.hpp"
#include "flowlab/transport.hpp"

namespace {

/// Options of coupling/minibatch_ot.
struct MinibatchOtOptions {
  bool resample;  ///< draw pairs from the plan (TorchCFM) instead of using the permutation
  explicit MinibatchOtOptions(const flowlab::Params& p) : resample(p.boolean("resample")) {}
};

class MinibatchOtCoupling final : public flowlab::Coupling {
 public:
  explicit MinibatchOtCoupling(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}
  flowlab::Pairing pair(const flowlab::Tensor& x0, const flowlab::Tensor& x1) const override {
    if (x0.size(0) != x1.size(0))
      throw flowlab::Error(fmt::format("{}: batches of {} noise and {} data rows", owner_, x0.size(0), x1.size(0)));
    const at::Tensor perm = flowlab::optimal_assignment(flowlab::squared_euclidean_cost(x0, x1), owner_);
    if (!opt_.resample) return {at::arange(x0.size(0), at::kLong), perm};
    at::Tensor plan = at::zeros({x0.size(0), x1.size(0)}, at::kDouble);
    plan.index_put_({at::arange(x0.size(0), at::kLong), perm}, at::ones({x0.size(0)}, at::kDouble));
    return flowlab::sample_pairs(plan, x0.size(0));
  }
  bool draws_random() const override { return opt_.resample; }  // the permutation alone draws nothing

 private:
  MinibatchOtOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(coupling, minibatch_ot, MinibatchOtCoupling, "1.0.0", "exact OT assignment within each batch (OT-CFM)",
               FLOWLAB_PARAM(resample, bool, "false",
                             "draw B pairs from the plan with replacement (TorchCFM) "
                             "instead of re-pairing by the permutation"))
