// Sparse Gaussian: x0 = m * z with z ~ N(0, I) and a Bernoulli mask m that zeroes each entry with prob. `rate`.
#include <fmt/format.h>

#include "flowlab/noise.hpp"

namespace {

/// Options of noise/sparse.
struct SparseOptions {
  double rate;  ///< probability that an entry is zero, in [0, 1)
  explicit SparseOptions(const flowlab::Params& p) : rate(p.real("rate")) {
    if (!(rate >= 0 && rate < 1))
      throw flowlab::ParamError(p.owner(), "rate", fmt::format("must be in [0, 1), got {}", rate));
  }
};

class SparseNoise final : public flowlab::Noise {
 public:
  explicit SparseNoise(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    const flowlab::Tensor keep = at::rand(shape, o).ge(opt_.rate).to(o.dtype());
    return at::randn(shape, o) * keep;
  }

 private:
  SparseOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(noise, sparse, SparseNoise, "1.0.0", "N(0, I) with each entry zeroed with probability rate",
               FLOWLAB_PARAM(rate, float, "0.5", "probability that an entry is zero, in [0, 1)"))
