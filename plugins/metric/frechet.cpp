// Frechet distance between Gaussians fitted to two sample sets, in data space (the FID formula on raw
// coordinates, Heusel et al. 2017): |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).
// tr (C1 C2)^(1/2) = sum sqrt(eig(S C2 S)) with S = C1^(1/2), a symmetric form computed with eigh in float64.
// Bias: the plug-in estimate (unbiased covariances, ddof = 1) is biased upwards: for equal distributions it is > 0
// (the mean term alone by tr(C1)/N + tr(C2)/M on average). It compares means and covariances only, so it is blind
// to modes that keep them.
// Features: the `features` parameter is applied by the engine before compute(); this plugin ignores it.
#include "flowlab/metric.hpp"

namespace {

at::Tensor sqrtm_psd(const at::Tensor& c) {
  const auto [w, v] = at::linalg_eigh(c);
  return at::matmul(v * w.clamp_min(0).sqrt().unsqueeze(0), v.transpose(0, 1));
}

class FrechetMetric final : public flowlab::Metric {
 public:
  explicit FrechetMetric(const flowlab::Params&) {}
  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    const at::Tensor a = samples.flatten(1).to(at::kCPU, at::kDouble), b = reference.flatten(1).to(at::kCPU, at::kDouble);
    if (a.size(0) < 2 || b.size(0) < 2 || a.size(1) != b.size(1))
      throw flowlab::Error("metric/frechet: needs at least 2 samples on each side, with the same dimension");
    const at::Tensor mu_a = a.mean(0), mu_b = b.mean(0);
    const at::Tensor ca = at::cov(a.t()).reshape({a.size(1), a.size(1)}), cb = at::cov(b.t()).reshape({b.size(1), b.size(1)});
    const at::Tensor s = sqrtm_psd(ca);
    const at::Tensor cross = at::linalg_eigvalsh(at::matmul(at::matmul(s, cb), s)).clamp_min(0).sqrt().sum();
    return ((mu_a - mu_b).pow(2).sum() + ca.trace() + cb.trace() - 2 * cross).item<double>();
  }
};

}  // namespace

FLOWLAB_PLUGIN(metric, frechet, FrechetMetric, "1.0.0", "Frechet distance of Gaussian fits in data space (FID formula)",
               FLOWLAB_PARAM(features, string, "raw",
                             "raw, builtin:digits, builtin:fashion_mnist or torchscript:PATH; applied by the engine "
                             "before compute()"))
