// Variance-preserving path with a linear data coefficient: alpha = t, sigma = sqrt(1 - t^2) (the VP path of the
// training text, eq. for sigma_t = t, with the roles of the endpoints in flowlab's convention). d_sigma = -t / sqrt(1 -
// t^2) is singular at t = 1.
#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

class VpLinearPath final : public flowlab::AffinePath {
 public:
  explicit VpLinearPath(const flowlab::Params& p) { (void)p; }
  flowlab::TimeDomain domain() const override { return {false, true}; }  // d_sigma singular at t = 1
  flowlab::Schedule schedule(const Tensor& t) const override {
    const Tensor sigma = at::sqrt(1 - t * t);
    return {t, sigma, at::ones_like(t), -t / sigma};
  }
};

}  // namespace

FLOWLAB_PLUGIN(path, vp_linear, VpLinearPath, "1.1.0", "VP with alpha = t, sigma = sqrt(1 - t^2)")
