// Uniform weighting: w(t) = 1 on the velocity loss ||v - u||^2, the plain conditional flow-matching loss
// (Lipman et al. 2023, "Flow Matching for Generative Modeling", eq. 9, L_CFM = E ||v_t(x) - u_t(x | x1)||^2; training
// text 004, L_CFM). Defined on the velocity loss by its source: nothing to convert.
#include "flowlab/weighting.hpp"

namespace {

class UniformWeighting final : public flowlab::Weighting {
 public:
  explicit UniformWeighting(const flowlab::Params&) {}
  flowlab::Tensor weight(const flowlab::Tensor& t, const flowlab::Path&) const override { return at::ones_like(t); }
};

}  // namespace

FLOWLAB_PLUGIN(weighting, uniform, UniformWeighting, "1.0.0",
               "w = 1 on the velocity loss ||v-u||^2 (plain CFM loss, Lipman et al. 2023 eq. 9)")
