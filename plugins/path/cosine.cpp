// Cosine path (Nichol & Dhariwal 2021 as a flow): alpha = sin(pi t / 2), sigma = cos(pi t / 2).
#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

class CosinePath final : public flowlab::AffinePath {
 public:
  explicit CosinePath(const flowlab::Params& p) { (void)p; }
  flowlab::Schedule schedule(const Tensor& t) const override {
    const double w = M_PI / 2;
    return {at::sin(w * t), at::cos(w * t), w * at::cos(w * t), -w * at::sin(w * t)};
  }
};

}  // namespace

FLOWLAB_PLUGIN(path, cosine, CosinePath, "1.0.0", "cosine: alpha = sin(pi t/2), sigma = cos(pi t/2)")
