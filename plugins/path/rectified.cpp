// Rectified flow / CondOT path (Liu et al. 2022, Lipman et al. 2023): x_t = (1 - t) x0 + t x1, u_t = x1 - x0.
#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

class RectifiedPath final : public flowlab::AffinePath {
 public:
  explicit RectifiedPath(const flowlab::Params& p) { (void)p; }
  flowlab::Schedule schedule(const Tensor& t) const override { return {t, 1 - t, at::ones_like(t), -at::ones_like(t)}; }
  // AffinePath::sample's values from 6 ops instead of 14 (a training step's per-op cost matters for small nets):
  // t x1 + (1 - t) x0 in the same order, and 1 x1 + (-1) x0 = x1 - x0 exactly.
  flowlab::PathSample sample(const Tensor& x0, const Tensor& x1, const Tensor& t, const Tensor&) const override {
    const Tensor tt = flowlab::expand_like(t, x1);
    return {x0, x1, t, tt * x1 + (1 - tt) * x0, x1 - x0};
  }
};

}  // namespace

FLOWLAB_PLUGIN(path, rectified, RectifiedPath, "1.0.0", "rectified flow (CondOT): alpha = t, sigma = 1 - t")
