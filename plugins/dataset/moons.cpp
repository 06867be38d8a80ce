// Two interleaving half circles (sklearn make_moons): upper (cos a, sin a), lower (1 - cos a, 0.5 - sin a),
// a ~ U[0, pi], plus Gaussian noise; centred at the origin. Label: which moon; attribute: |x|.
//
// preset: torchcfm is TorchCFM's sample_moons(n) (torchcfm.utils): torchdyn's generate_moons(n, noise=0.2) times 3
// minus 1. torchdyn puts the points on fixed angle grids, not random angles: the first n/2 (floor) on the upper
// moon at a = linspace(0, pi, n/2), the other n - n/2 on the lower one at linspace(0, pi, n - n/2), in that order;
// its noise is ONE uniform scalar u ~ U[0, 0.2) per point (np.random.rand(n, 1) * noise), added to both
// coordinates. So a point is 3 * (moon(a) + (u, u)) - 1, with the shift 3u in [0, 0.6) on the diagonal, and the set
// is not centred (its mean is about (0.5 + 0.3, 0.25 + 0.3) * 3 - 1).
// The grid depends on the number of points asked for. flowlab asks a dataset for one training batch per step
// (Dataset::sample(batch_size)), which is what TorchCFM's loop does (sample_moons(batch_size) every step), so the
// preset applies torchdyn's rule to each call: a batch of n is exactly sample_moons(n)'s set of points, a
// reference of 2000 points is sample_moons(2000)'s. The rows are in torchdyn's order (upper moon first), not
// shuffled; the distribution is TorchCFM's, the random stream flowlab's (torch's default generator, not NumPy's),
// so the uniform shifts are not bit-identical to TorchCFM's for a seed. With the preset, `noise` must stay at its
// default (a ParamError otherwise): the preset's noise is the uniform shift above.
#include <cmath>

#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/moons.
struct MoonsOptions {
  double noise;   ///< standard deviation of the added noise
  bool torchcfm;  ///< preset torchcfm: torchdyn's angle grids and uniform shift, times 3 minus 1
  explicit MoonsOptions(const flowlab::Params& p) : noise(p.real("noise")), torchcfm(p.str("preset") == "torchcfm") {
    if (!(noise >= 0)) throw flowlab::ParamError(p.owner(), "noise", fmt::format("must be >= 0, got {}", noise));
    if (torchcfm && noise != 0.05)
      throw flowlab::ParamError(p.owner(), "noise",
                                fmt::format("is fixed by preset torchcfm (one uniform shift in [0, 0.2) per point, "
                                            "on both coordinates, before the x3); leave it unset (got {})",
                                            noise));
  }
};

/// TorchCFM's sample_moons(n): torchdyn's generate_moons(n, noise=0.2) * 3 - 1, computed as torchdyn does.
flowlab::Batch torchcfm_moons(int64_t n, const at::TensorOptions& o) {
  const int64_t n_out = n / 2, n_in = n - n_out;
  const at::Tensor a = at::linspace(0, M_PI, n_out, o), b = at::linspace(0, M_PI, n_in, o);
  const at::Tensor x = at::cat({at::cos(a), 1 - at::cos(b)});
  const at::Tensor y = at::cat({at::sin(a), 1 - at::sin(b) - 0.5});
  const at::Tensor shift = at::rand({n, 1}, o) * 0.2;
  const at::Tensor pts = (at::stack({x, y}, 1) + shift) * 3 - 1;
  const at::Tensor label = at::cat({at::zeros({n_out}, o.dtype(at::kLong)), at::ones({n_in}, o.dtype(at::kLong))});
  return flowlab::planar_batch(pts, label);
}

class Moons final : public flowlab::Dataset {
 public:
  explicit Moons(const flowlab::Params& p) : opt_(p) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 2; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    if (opt_.torchcfm) return torchcfm_moons(n, o);
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

FLOWLAB_PLUGIN(dataset, moons, Moons, "1.1.0", "two interleaving half circles (sklearn make_moons), centred",
               FLOWLAB_PARAM(noise, float, "0.05", "standard deviation of the added noise") FLOWLAB_PARAM(
                   preset, enum(none | torchcfm), "none",
                   "torchcfm: TorchCFM's sample_moons (torchdyn's angle grids per batch, a uniform shift, "
                   "x3 - 1); none: random angles, Gaussian noise, centred"))
