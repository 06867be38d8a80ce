// Uniform training times: t ~ U[0, 1).
#include "flowlab/time_sampler.hpp"

namespace {

class UniformTimeSampler final : public flowlab::TimeSampler {
 public:
  explicit UniformTimeSampler(const flowlab::Params&) {}
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override { return at::rand({n}, o); }
  double cdf(double t) const override { return t <= 0 ? 0 : t >= 1 ? 1 : t; }
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, uniform, UniformTimeSampler, "1.0.0", "t ~ U[0, 1)")
