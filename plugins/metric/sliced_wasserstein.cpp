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

constexpr const char* kPlugin = "metric/sliced_wasserstein";

/// Options of metric/sliced_wasserstein.
struct SlicedOptions {
  int64_t projections;  ///< number of random directions P (default 256)
  int64_t seed;         ///< seed of the directions (default 0)
  explicit SlicedOptions(const flowlab::Params& p) : projections(p.integer("projections")), seed(p.integer("seed")) {
    if (projections < 1)
      throw flowlab::ParamError(kPlugin, "projections", fmt::format("must be >= 1, got {}", projections));
  }
};

class SlicedWasserstein final : public flowlab::Metric {
 public:
  explicit SlicedWasserstein(const flowlab::Params& p) : opt_(p) {}

  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    const auto [x, y] = flowlab::metric_detail::sample_sets(samples, reference, kPlugin, 1);
    const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
    at::Generator gen = flowlab::metric_detail::seeded_generator(opt_.seed);
    at::Tensor theta = at::randn({opt_.projections, d}, gen, at::TensorOptions(at::kDouble));
    theta = (theta / theta.norm(2, {1}, true)).to(x.device());
    // Sorted projections [N, P] and [M, P] (centred on the reference mean: the distance is translation invariant).
    const at::Tensor centre = y.mean(0, true);
    const at::Tensor px = std::get<0>(at::matmul(x - centre, theta.t()).sort(0));
    const at::Tensor py = std::get<0>(at::matmul(y - centre, theta.t()).sort(0));
    // Merged quantile grid in units of 1/(N M): breakpoints i M (i = 1..N) and j N (j = 1..M).
    const auto lopts = at::TensorOptions(at::kLong).device(x.device());
    const at::Tensor cuts = std::get<0>(at::unique_consecutive(
        std::get<0>(at::cat({at::arange(1, n + 1, lopts) * m, at::arange(1, m + 1, lopts) * n}).sort())));
    const at::Tensor starts = at::cat({at::zeros({1}, lopts), cuts.slice(0, 0, cuts.size(0) - 1)});
    const at::Tensor widths = (cuts - starts).to(at::kDouble) / (static_cast<double>(n) * static_cast<double>(m));
    const at::Tensor diff = px.index_select(0, at::div(starts, m, "floor")) - py.index_select(0, at::div(starts, n, "floor"));
    const at::Tensor w2sq = (diff * diff * widths.unsqueeze(1)).sum(0);  // [P]
    return std::sqrt(std::max(0.0, w2sq.mean().item<double>()));
  }

 private:
  SlicedOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(metric, sliced_wasserstein, SlicedWasserstein, "1.0.0",
               "sliced 2-Wasserstein distance: random 1D projections, exact quantile matching",
               FLOWLAB_PARAM(projections, int, "256", "number of random unit directions")
               FLOWLAB_PARAM(seed, int, "0", "seed of the directions (the global RNG is not used)"))
