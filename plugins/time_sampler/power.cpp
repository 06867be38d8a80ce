// Power-law times: t = u^k with u ~ U[0, 1); k > 1 favours the noise end (t -> 0), k < 1 the data end.
// CDF: P(t <= x) = x^(1/k).
#include <fmt/format.h>

#include <cmath>

#include "flowlab/time_sampler.hpp"

namespace {

/// Options of time_sampler/power.
struct PowerOptions {
  double k;  ///< exponent, > 0
  explicit PowerOptions(const flowlab::Params& p) : k(p.real("k")) {
    if (!(k > 0)) throw flowlab::ParamError(p.owner(), "k", fmt::format("must be > 0, got {}", k));
  }
};

class PowerTimeSampler final : public flowlab::TimeSampler {
 public:
  explicit PowerTimeSampler(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override {
    return at::pow(at::rand({n}, o), opt_.k);
  }
  double cdf(double t) const override { return t <= 0 ? 0 : t >= 1 ? 1 : std::pow(t, 1 / opt_.k); }

 private:
  PowerOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, power, PowerTimeSampler, "1.0.0", "t = u^k, u ~ U[0,1): k > 1 favours t -> 0",
               FLOWLAB_PARAM(k, float, "2", "exponent, > 0"))
