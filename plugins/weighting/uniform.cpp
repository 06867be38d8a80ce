// Uniform weighting: w(t) = 1, the plain conditional flow-matching loss.
#include "flowlab/weighting.hpp"

namespace {

class UniformWeighting final : public flowlab::Weighting {
 public:
  explicit UniformWeighting(const flowlab::Params&) {}
  flowlab::Tensor weight(const flowlab::Tensor& t, const flowlab::Path&) const override { return at::ones_like(t); }
};

}  // namespace

FLOWLAB_PLUGIN(weighting, uniform, UniformWeighting, "1.0.0", "w(t) = 1")
