// Rectified flow / CondOT path (Liu et al. 2022, Lipman et al. 2023): x_t = (1 - t) x0 + t x1, u_t = x1 - x0.
#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

class RectifiedPath final : public flowlab::AffinePath {
 public:
  explicit RectifiedPath(const flowlab::Params& p) { (void)p; }
  flowlab::Schedule schedule(const Tensor& t) const override {
    return {t, 1 - t, at::ones_like(t), -at::ones_like(t)};
  }

};

}  // namespace

FLOWLAB_PLUGIN(path, rectified, RectifiedPath, "1.0.0", "rectified flow (CondOT): alpha = t, sigma = 1 - t")
