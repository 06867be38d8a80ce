// Maximum mean discrepancy (Gretton et al. 2012) between the generated set {x_i} (N points) and the reference
// {y_j} (M points), rows flattened to vectors, with a sum of Gaussian (RBF) kernels at several bandwidths:
//   k(x, y) = sum_b exp(-|x - y|^2 / (2 h_b^2)).
// The value reported is the unbiased estimate of MMD^2 = E k(X,X') + E k(Y,Y') - 2 E k(X,Y):
//   1/(N (N-1)) sum_{i != i'} k(x_i, x_i') + 1/(M (M-1)) sum_{j != j'} k(y_j, y_j') - 2/(N M) sum_ij k(x_i, y_j).
// Bandwidths: with bandwidth_unit = median (the default), h_b = bandwidths[b] * the median pairwise distance of the
// reference set (over its first 2000 points; the "median heuristic" at several scales, 0.25x to 4x by default);
// with bandwidth_unit = absolute, h_b = bandwidths[b] as given. The median depends on the reference only, so every
// generated set compared with the same reference is scored with the same kernel.
// Bias: none for a fixed kernel: each term is a U-statistic (the cross term over independent sets is the mean
// over all pairs), so the estimate is unbiased for MMD^2 when the sets are independent i.i.d. samples, and can be
// slightly negative when the distributions are equal. (With the median unit, the kernel is chosen from the
// reference itself; this data-dependent choice is not corrected for.) Identical sets are not independent: there the
// value is 2/N (mean off-diagonal k - k(x, x)) = O(1/N), which is < 0.
// Features: the `features` parameter is applied by the engine before compute(); this plugin ignores it.
// Cost: three tiled pairwise sums, about (N + M)^2 / 2 kernel values per bandwidth, float64 on the tensors' device.
#include <fmt/format.h>

#include "flowlab/metric.hpp"
#include "sample_sets.hpp"

namespace {

/// Options of metric/mmd.
struct MmdOptions {
  std::vector<double> bandwidths;  ///< bandwidths, or multiples of the reference's median distance
  bool median_unit;                ///< bandwidth_unit = median (true) or absolute
  explicit MmdOptions(const flowlab::Params& p)
      : bandwidths(p.float_list("bandwidths")), median_unit(p.str("bandwidth_unit") == "median") {
    if (bandwidths.empty()) throw flowlab::ParamError(p.owner(), "bandwidths", "needs at least one bandwidth");
    for (double h : bandwidths)
      if (!(h > 0) || !std::isfinite(h))
        throw flowlab::ParamError(p.owner(), "bandwidths", fmt::format("must all be finite and > 0, got {}", h));
  }
};

class RbfMmd final : public flowlab::Metric {
 public:
  explicit RbfMmd(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {}

  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    auto [x, y] = flowlab::metric_detail::sample_sets(samples, reference, owner_, 2);
    const at::Tensor centre = y.mean(0, true);
    x = x - centre, y = y - centre;
    double unit = 1;
    if (opt_.median_unit) {
      const at::Tensor r = y.slice(0, 0, std::min<int64_t>(y.size(0), 2000));
      const at::Tensor d2 = flowlab::metric_detail::squared_distances(r, r);
      const at::Tensor upper = at::ones_like(d2, d2.options().dtype(at::kBool)).triu(1);
      unit = std::sqrt(d2.masked_select(upper).median().item<double>());
      if (!(unit > 0))
        throw flowlab::Error(fmt::format("{}: the reference's median pairwise distance is 0, so bandwidths relative to "
                                         "it are 0; set bandwidth_unit: absolute with explicit bandwidths",
                                         owner_));
    }
    std::vector<double> inv2h2;  // 1 / (2 h^2)
    for (double h : opt_.bandwidths) inv2h2.push_back(1.0 / (2 * h * unit * h * unit));
    const auto kernel = [&inv2h2](const at::Tensor& a, const at::Tensor& b) {
      const at::Tensor d2 = flowlab::metric_detail::squared_distances(a, b);
      at::Tensor k = at::mul(d2, -inv2h2[0]).exp_(), term = at::empty_like(d2);
      for (size_t i = 1; i < inv2h2.size(); ++i) k.add_(at::mul_out(term, d2, -inv2h2[i]).exp_());
      return k;
    };
    return flowlab::metric_detail::unbiased_mmd2(x, y, kernel);
  }

 private:
  MmdOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(
    metric, mmd, RbfMmd, "1.0.0", "unbiased MMD^2 with a sum of RBF kernels at several bandwidths",
    FLOWLAB_PARAM(bandwidths, float_list, "0.25,0.5,1,2,4",
                  "RBF bandwidths h in exp(-|x-y|^2 / 2h^2), summed; multiples of the reference's median "
                  "pairwise distance unless bandwidth_unit is absolute")
        FLOWLAB_PARAM(bandwidth_unit, enum(median | absolute), "median",
                      "median: bandwidths are multiples of the reference's median pairwise distance (first "
                      "2000 points); absolute: bandwidths are used as given")
            FLOWLAB_PARAM(features, string, "raw",
                          "raw, builtin:digits, builtin:fashion_mnist or torchscript:PATH; applied by the engine "
                          "before compute()"))
