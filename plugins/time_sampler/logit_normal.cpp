// Logit-normal times (Esser et al. 2024, SD3): t = sigmoid(m + s z), z ~ N(0, 1).
// CDF: Phi((logit(t) - m) / s).
#include <fmt/format.h>

#include <cmath>

#include "flowlab/time_sampler.hpp"

namespace {

/// Options of time_sampler/logit_normal.
struct LogitNormalOptions {
  double m;  ///< location in logit space
  double s;  ///< scale in logit space, > 0
  explicit LogitNormalOptions(const flowlab::Params& p) : m(p.real("m")), s(p.real("s")) {
    if (!(s > 0)) throw flowlab::ParamError(p.owner(), "s", fmt::format("must be > 0, got {}", s));
  }
};

class LogitNormalTimeSampler final : public flowlab::TimeSampler {
 public:
  explicit LogitNormalTimeSampler(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override {
    return at::sigmoid(opt_.m + opt_.s * at::randn({n}, o));
  }
  double cdf(double t) const override {
    if (t <= 0) return 0;
    if (t >= 1) return 1;
    const double z = (std::log(t / (1 - t)) - opt_.m) / opt_.s;
    return 0.5 * std::erfc(-z / std::sqrt(2.0));
  }

 private:
  LogitNormalOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, logit_normal, LogitNormalTimeSampler, "1.0.0", "t = sigmoid(m + s z), z ~ N(0,1)",
               FLOWLAB_PARAM(m, float, "0", "location in logit space")
                   FLOWLAB_PARAM(s, float, "1", "scale in logit space, > 0"))
