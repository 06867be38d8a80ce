// Song et al. 2021 VP-SDE schedule as a flow, in flowlab time s = 1 - t: alpha = exp(-T(s)/2) with T(s) = beta_min s +
// (beta_max - beta_min) s^2 / 2, sigma = sqrt(1 - alpha^2).
#include <fmt/format.h>

#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

/// Options of path/vp.
struct VpOptions {
  double beta_min;  ///< beta at the data end
  double beta_max;  ///< beta at the noise end
  explicit VpOptions(const flowlab::Params& p) : beta_min(p.real("beta_min")), beta_max(p.real("beta_max")) {
    if (!(beta_min >= 0))
      throw flowlab::ParamError(p.owner(), "beta_min", fmt::format("must be >= 0, got {}", beta_min));
    if (!(beta_max > beta_min))
      throw flowlab::ParamError(p.owner(), "beta_max", fmt::format("must be > beta_min, got {}", beta_max));
  }
};

class VpPath final : public flowlab::AffinePath {
 public:
  explicit VpPath(const flowlab::Params& p) : opt_(p) {}
  flowlab::TimeDomain domain() const override { return {false, true}; }  // sigma = 0 at t = 1
  flowlab::Schedule schedule(const Tensor& t) const override {
    const Tensor s = 1 - t;
    const Tensor integral = opt_.beta_min * s + 0.5 * (opt_.beta_max - opt_.beta_min) * s * s;
    const Tensor beta = opt_.beta_min + (opt_.beta_max - opt_.beta_min) * s;
    const Tensor alpha = at::exp(-0.5 * integral);
    const Tensor d_alpha = 0.5 * beta * alpha;  // d/dt = -d/ds
    const Tensor sigma = at::sqrt(1 - alpha * alpha);
    return {alpha, sigma, d_alpha, -alpha * d_alpha / sigma};
  }

 private:
  VpOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(path, vp, VpPath, "1.1.0", "Song's VP: alpha = exp(-T(1-t)/2), sigma = sqrt(1 - alpha^2)",
               FLOWLAB_PARAM(beta_min, float, "0.1", "beta at the data end")
                   FLOWLAB_PARAM(beta_max, float, "20", "beta at the noise end"))
