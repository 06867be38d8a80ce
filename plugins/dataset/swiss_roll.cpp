// 2D Swiss roll (sklearn make_swiss_roll, coordinates x and z, / 5 as in FFJORD): s = 1.5 pi (1 + 2u),
// x = (s cos s, s sin s) / 5 + noise. Label: which of the 3 half-turns s falls in; attribute: |x|.
#include <cmath>

#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/swiss_roll.
struct SwissRollOptions {
  double noise;  ///< standard deviation of the added noise, before the / 5
  explicit SwissRollOptions(const flowlab::Params& p) : noise(p.real("noise")) {
    if (!(noise >= 0)) throw flowlab::ParamError(p.owner(), "noise", fmt::format("must be >= 0, got {}", noise));
  }
};

class SwissRoll final : public flowlab::Dataset {
 public:
  explicit SwissRoll(const flowlab::Params& p) : opt_(p) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 3; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor u = at::rand({n}, o);
    const at::Tensor s = 1.5 * M_PI * (1 + 2 * u);
    const at::Tensor pts = (at::stack({s * at::cos(s), s * at::sin(s)}, 1) + opt_.noise * at::randn({n, 2}, o)) / 5.0;
    return flowlab::planar_batch(pts, (u * 3).floor().clamp_max(2).to(at::kLong));
  }

 private:
  SwissRollOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, swiss_roll, SwissRoll, "1.0.0", "2D Swiss roll (sklearn, / 5)",
               FLOWLAB_PARAM(noise, float, "0.5", "standard deviation of the added noise (before / 5)"))
