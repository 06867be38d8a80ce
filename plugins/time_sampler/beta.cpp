// Beta(a, b) times, drawn as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). CDF: the regularised incomplete beta
// function I_t(a, b) (Boost.Math).
#include <fmt/format.h>

#include <boost/math/special_functions/beta.hpp>

#include "flowlab/time_sampler.hpp"

namespace {

/// Options of time_sampler/beta.
struct BetaOptions {
  double a;  ///< first shape, > 0
  double b;  ///< second shape, > 0
  explicit BetaOptions(const flowlab::Params& p) : a(p.real("a")), b(p.real("b")) {
    if (!(a > 0)) throw flowlab::ParamError(p.owner(), "a", fmt::format("must be > 0, got {}", a));
    if (!(b > 0)) throw flowlab::ParamError(p.owner(), "b", fmt::format("must be > 0, got {}", b));
  }
};

class BetaTimeSampler final : public flowlab::TimeSampler {
 public:
  explicit BetaTimeSampler(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override {
    // Gamma sampling runs on float64 for accuracy at small shapes, then converts.
    const auto d = o.dtype(at::kDouble);
    const flowlab::Tensor x = at::_standard_gamma(at::full({n}, opt_.a, d));
    const flowlab::Tensor y = at::_standard_gamma(at::full({n}, opt_.b, d));
    return (x / (x + y)).to(o.dtype());
  }
  double cdf(double t) const override { return t <= 0 ? 0 : t >= 1 ? 1 : boost::math::ibeta(opt_.a, opt_.b, t); }

 private:
  BetaOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, beta, BetaTimeSampler, "1.0.0", "t ~ Beta(a, b)",
               FLOWLAB_PARAM(a, float, "2", "first shape parameter, > 0")
                   FLOWLAB_PARAM(b, float, "2", "second shape parameter, > 0"))
