// Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased MMD^2 between the
// generated set {x_i} (N points) and the reference {y_j} (M points), rows flattened to vectors of D features, with
// the cubic polynomial kernel
//   k(x, y) = (x . y / D + 1)^3,
// estimated by 1/(n (n-1)) sum_{i != i'} k(x_i, x_i') + 1/(m (m-1)) sum_{j != j'} k(y_j, y_j') - 2/(n m) sum_ij k(x_i,
// y_j). With subsets = S > 0 (default 100, with subset_size 1000, as in the paper's code, torch-fidelity and
// clean-fid), the value is the mean of that estimate over S pairs of subsets of min(subset_size, N, M) points drawn
// without replacement from each set (a generator seeded with `seed`; the global RNG is untouched); with subsets = 0 it
// is the estimate on the full sets (also used when both sets have at most subset_size points). KID is usually reported
// on Inception features (features: torchscript:PATH) and often multiplied by 1000; this plugin reports MMD^2 itself.
// Bias: none. Each subset estimate is unbiased for MMD^2 (U-statistics within sets, the mean over all pairs across
// independent sets), so is their mean; it can be slightly negative for equal distributions. On identical sets
// (not independent) the full-set value is 2/N (mean off-diagonal k - mean k(x, x)) = O(1/N), < 0.
// The kernel is not translation invariant: inputs are used as given (no centring).
// Features: the `features` parameter is applied by the engine before compute(); this plugin ignores it.
// Cost: per estimate about (n + m)^2 / 2 dot products of length D (BLAS), float64 on the tensors' device.
#include <fmt/format.h>

#include "flowlab/metric.hpp"
#include "sample_sets.hpp"

namespace {

/// Options of metric/kid.
struct KidOptions {
  int64_t subsets;      ///< number of subset pairs averaged; 0: the full sets once
  int64_t subset_size;  ///< points per subset (capped at min(N, M))
  int64_t seed;         ///< seed of the subset draws
  explicit KidOptions(const flowlab::Params& p)
      : subsets(p.integer("subsets")), subset_size(p.integer("subset_size")), seed(p.integer("seed")) {
    if (subsets < 0) throw flowlab::ParamError(p.owner(), "subsets", fmt::format("must be >= 0, got {}", subsets));
    if (subset_size < 2)
      throw flowlab::ParamError(p.owner(), "subset_size", fmt::format("must be >= 2, got {}", subset_size));
  }
};

class KidMetric final : public flowlab::Metric {
 public:
  explicit KidMetric(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}

  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    const auto [x, y] = flowlab::metric_detail::sample_sets(samples, reference, owner_, 2);
    const double inv_d = 1.0 / static_cast<double>(x.size(1));
    const auto kernel = [inv_d](const at::Tensor& a, const at::Tensor& b) {
      return at::matmul(a, b.t()).mul_(inv_d).add_(1).pow_(3);
    };
    // Full sets when asked, or when both fit in one subset.
    if (opt_.subsets == 0 || (opt_.subset_size >= x.size(0) && opt_.subset_size >= y.size(0)))
      return flowlab::metric_detail::unbiased_mmd2(x, y, kernel);
    const int64_t n = x.size(0), m = y.size(0), s = std::min({opt_.subset_size, n, m});
    at::Generator gen = flowlab::metric_detail::seeded_generator(opt_.seed);
    const auto lopts = at::TensorOptions(at::kLong);
    double total = 0;
    for (int64_t k = 0; k < opt_.subsets; ++k) {
      const at::Tensor ix = at::randperm(n, gen, lopts).slice(0, 0, s).to(x.device());
      const at::Tensor iy = at::randperm(m, gen, lopts).slice(0, 0, s).to(y.device());
      total += flowlab::metric_detail::unbiased_mmd2(x.index_select(0, ix), y.index_select(0, iy), kernel);
    }
    return total / static_cast<double>(opt_.subsets);
  }

 private:
  KidOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(
    metric, kid, KidMetric, "1.0.0",
    "kernel inception distance: unbiased MMD^2 with the cubic polynomial kernel (x.y/D + 1)^3",
    FLOWLAB_PARAM(subsets, int, "100", "subset pairs averaged (0: the full sets, once)")
        FLOWLAB_PARAM(subset_size, int, "1000", "points per subset, capped at the smaller set")
            FLOWLAB_PARAM(seed, int, "0", "seed of the subset draws (the global RNG is not used)")
                FLOWLAB_PARAM(features, string, "raw",
                              "raw, builtin:digits, builtin:fashion_mnist or torchscript:PATH; applied by the engine "
                              "before compute()"))
