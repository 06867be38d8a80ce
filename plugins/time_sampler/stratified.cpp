// Stratified times: the batch of n gets one draw in each bin [i/n, (i+1)/n), in random order. The marginal of
// one draw is U[0, 1); the batch has lower variance than i.i.d. draws.
#include "flowlab/time_sampler.hpp"

namespace {

class StratifiedTimeSampler final : public flowlab::TimeSampler {
 public:
  explicit StratifiedTimeSampler(const flowlab::Params&) {}
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override {
    const flowlab::Tensor bins = at::randperm(n, o.dtype(at::kLong)).to(o.dtype());
    return (bins + at::rand({n}, o)) / static_cast<double>(n);
  }
  double cdf(double t) const override { return t <= 0 ? 0 : t >= 1 ? 1 : t; }
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, stratified, StratifiedTimeSampler, "1.0.0", "one U[0,1) draw per bin i/n across the batch")
