// Sliced 2-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015) between the generated set {x_i} (N points)
// and the reference {y_j} (M points), rows flattened to vectors of D values:
//   SW2 = sqrt( (1/P) sum_p W2^2(theta_p . x, theta_p . y) ),
// theta_1..theta_P independent uniform directions on the unit sphere S^(D-1) (normalised Gaussian vectors from a
// generator seeded with `seed`, so the value is reproducible and the global RNG is untouched).
// Each 1D term is exact: W2^2 between two empirical measures on the line is int_0^1 (F^-1(u) - G^-1(u))^2 du with
// the quantile functions of the sorted projections, piecewise constant on the grid {i/N} U {j/M}; the integral is
// summed over that merged grid (integer breakpoints in units of 1/(N M)), so N != M is exact quantile matching and
// N == M is the usual sorted pairing (1/N) sum_k (x_(k) - y_(k))^2. In 1D every direction is +-1 and SW2 = W2.
//
// Bias: for given sets, the mean over directions is an unbiased Monte Carlo estimate of SW2^2 = E_theta W2^2 of the
// empirical measures (standard error shrinking like 1/sqrt(P)); the final sqrt makes SW2 itself biased slightly low
// (Jensen). As an estimator between distributions it is biased upwards like every empirical Wasserstein distance:
// two samples of the same distribution give SW2 > 0, of order N^(-1/2) per direction. Identical sets give exactly 0.
// Note SW2 <= W2 and, for two Gaussians differing only by a mean shift delta, SW2 = |delta| / sqrt(D).
// Cost: O(P (N + M) (D + log(N + M))), on the tensors' device.
#include <fmt/format.h>

#include "flowlab/metric.hpp"
#include "sample_sets.hpp"

namespace {

constexpr int64_t kChunk = 64;  ///< directions projected at a time

/// Options of metric/sliced_wasserstein.
struct SlicedOptions {
  int64_t projections;  ///< number of random directions P
  int64_t seed;         ///< seed of the directions
  explicit SlicedOptions(const flowlab::Params& p) : projections(p.integer("projections")), seed(p.integer("seed")) {
    if (projections < 1)
      throw flowlab::ParamError(p.owner(), "projections", fmt::format("must be >= 1, got {}", projections));
  }
};

class SlicedWasserstein final : public flowlab::Metric {
 public:
  explicit SlicedWasserstein(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}

  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    const auto [x, y] = flowlab::metric_detail::sample_sets(samples, reference, owner_, 1);
    const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
    at::Generator gen = flowlab::metric_detail::seeded_generator(opt_.seed);
    at::Tensor theta = at::randn({opt_.projections, d}, gen, at::TensorOptions(at::kDouble));
    theta = (theta / theta.norm(2, {1}, true)).to(x.device());
    // Merged quantile grid in units of 1/(N M): breakpoints i M (i = 1..N) and j N (j = 1..M); on the segment
    // starting at s the quantiles are the (s / M)-th generated and (s / N)-th reference order statistics.
    at::Tensor ix, iy, widths;
    if (n != m) {
      const auto lopts = at::TensorOptions(at::kLong).device(x.device());
      const at::Tensor cuts = std::get<0>(at::unique_consecutive(
          std::get<0>(at::cat({at::arange(1, n + 1, lopts) * m, at::arange(1, m + 1, lopts) * n}).sort())));
      const at::Tensor starts = at::cat({at::zeros({1}, lopts), cuts.slice(0, 0, cuts.size(0) - 1)});
      widths = (cuts - starts).to(at::kDouble) / (static_cast<double>(n) * static_cast<double>(m));
      ix = at::div(starts, m, "floor"), iy = at::div(starts, n, "floor");
    }
    // Sorted projections [P, N] and [P, M], a chunk of directions at a time (centred on the reference mean: the
    // distance is translation invariant).
    const at::Tensor centre = y.mean(0, true), xc = x - centre, yc = y - centre;
    at::Tensor total = at::zeros({}, x.options());
    for (int64_t p = 0; p < opt_.projections; p += kChunk) {
      const at::Tensor t = theta.slice(0, p, std::min(opt_.projections, p + kChunk));
      const at::Tensor px = std::get<0>(at::matmul(t, xc.t()).sort(1)), py = std::get<0>(at::matmul(t, yc.t()).sort(1));
      if (n == m) {
        total.add_((px - py).pow_(2).sum(), 1.0 / static_cast<double>(n));
      } else {
        total.add_((px.index_select(1, ix) - py.index_select(1, iy)).pow_(2).mul_(widths).sum());
      }
    }
    const at::Tensor w2sq = total / static_cast<double>(opt_.projections);  // mean over directions of W2^2
    return std::sqrt(std::max(0.0, w2sq.item<double>()));
  }

 private:
  SlicedOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(metric, sliced_wasserstein, SlicedWasserstein, "1.0.0",
               "sliced 2-Wasserstein distance: random 1D projections, exact quantile matching",
               FLOWLAB_PARAM(projections, int, "256", "number of random unit directions")
                   FLOWLAB_PARAM(seed, int, "0", "seed of the directions (the global RNG is not used)"))
