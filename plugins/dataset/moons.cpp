// Two interleaving half circles (sklearn make_moons): upper (cos a, sin a), lower (1 - cos a, 0.5 - sin a),
// a ~ U[0, pi], plus Gaussian noise; centred at the origin. Label: which moon; attribute: |x|.
#include <cmath>

#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/moons.
struct MoonsOptions {
  double noise;  ///< standard deviation of the added noise (default 0.05)
  explicit MoonsOptions(const flowlab::Params& p) : noise(p.real("noise")) {
    if (!(noise >= 0)) throw flowlab::ParamError("dataset/moons", "noise", fmt::format("must be >= 0, got {}", noise));
  }
};

class Moons final : public flowlab::Dataset {
 public:
  explicit Moons(const flowlab::Params& p) : opt_(p) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 2; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor moon = at::randint(2, {n}, o.dtype(at::kLong));
    const at::Tensor a = at::rand({n}, o) * M_PI;
    const at::Tensor lower = moon.to(o.dtype());
    const at::Tensor x = at::cos(a) * (1 - 2 * lower) + lower;
    const at::Tensor y = at::sin(a) * (1 - 2 * lower) + 0.5 * lower;
    // centre: the set spans x in [-1, 2], y in [-0.5, 1]
    const at::Tensor pts = at::stack({x - 0.5, y - 0.25}, 1) + opt_.noise * at::randn({n, 2}, o);
    return flowlab::planar_batch(pts, moon);
  }

 private:
  MoonsOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, moons, Moons, "1.0.0", "two interleaving half circles (sklearn make_moons), centred",
               FLOWLAB_PARAM(noise, float, "0.05", "standard deviation of the added noise"))
