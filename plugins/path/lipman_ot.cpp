// Lipman et al. 2023, eq. 20-22: x_t = (1 - (1 - sigma_min) t) x0 + t x1, u_t = x1 - (1 - sigma_min) x0.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

/// Options of path/lipman_ot.
struct LipmanOtOptions {
  double sigma_min;  ///< std of the Gaussian left around x1 at t = 1, in [0, 1)
  explicit LipmanOtOptions(const flowlab::Params& p) : sigma_min(p.real("sigma_min")) {
    if (!(sigma_min >= 0 && sigma_min < 1))
      throw flowlab::ParamError(p.owner(), "sigma_min", fmt::format("must be in [0, 1), got {}", sigma_min));
  }
};

class LipmanOtPath final : public flowlab::AffinePath {
 public:
  explicit LipmanOtPath(const flowlab::Params& p) : opt_(p) {}
  flowlab::Schedule schedule(const Tensor& t) const override {
    const double k = 1 - opt_.sigma_min;
    return {t, 1 - k * t, at::ones_like(t), at::full_like(t, -k)};
  }

 private:
  LipmanOtOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(path, lipman_ot, LipmanOtPath, "1.0.0", "Lipman OT path: alpha = t, sigma = 1 - (1 - sigma_min) t",
               FLOWLAB_PARAM(sigma_min, float, "1e-4", "std left around the data at t = 1, in [0, 1)"))
