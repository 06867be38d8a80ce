// Energy distance (Székely & Rizzo 2013) between the generated set {x_i} (N points) and the reference {y_j}
// (M points), rows flattened to vectors, |.| the Euclidean norm. The value reported is the SQUARED energy distance
//   D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'|
// (>= 0, and 0 only for equal distributions; it is twice the squared L2 distance of the characteristic functions
// with the weight of Székely & Rizzo; in 1D it is 2 int (F - G)^2), estimated by
//   2/(N M) sum_ij |x_i - y_j| - 1/(N (N-1)) sum_{i != i'} |x_i - x_i'| - 1/(M (M-1)) sum_{j != j'} |y_j - y_j'|.
// Bias: none. Each term is a U-statistic (the cross term over independent sets is a mean over all pairs; the
// within-set terms leave out i = i'), so the estimate is unbiased for D^2 when the two sets are independent i.i.d.
// samples; it can therefore be slightly negative when the distributions are equal (then its mean is 0). Taking a
// square root would make it biased; compare D^2 values, or sqrt(max(D^2, 0)) with that in mind. Identical sets are
// not independent: there the value is -2/N times the mean within-set distance, exactly.
// Cost: three tiled pairwise sums, about (N + M)^2 / 2 distances, float64 on the tensors' device.
#include <fmt/format.h>

#include "flowlab/metric.hpp"
#include "sample_sets.hpp"

namespace {

class EnergyDistance final : public flowlab::Metric {
 public:
  explicit EnergyDistance(const flowlab::Params& p) : owner_(p.owner()) {}

  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    auto [x, y] = flowlab::metric_detail::sample_sets(samples, reference, owner_, 2);
    const at::Tensor centre = y.mean(0, true);  // distances are translation invariant; centring limits cancellation
    x = x - centre, y = y - centre;
    const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
    const auto dist = [](const at::Tensor& a, const at::Tensor& b) {
      return flowlab::metric_detail::squared_distances(a, b).sqrt_();
    };
    using flowlab::metric_detail::pair_sum;
    return 2 * pair_sum(x, y, false, dist) / (n * m) - pair_sum(x, x, true, dist) / (n * (n - 1)) -
           pair_sum(y, y, true, dist) / (m * (m - 1));
  }

 private:
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(metric, energy, EnergyDistance, "1.0.0",
               "squared energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'|, unbiased (U-statistics)")
