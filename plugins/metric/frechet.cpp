// Frechet distance between Gaussians fitted to two sample sets, in data space (the FID formula on raw
// coordinates, Heusel et al. 2017): |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).
// tr (C1 C2)^(1/2) = sum sqrt(eig(S C2 S)) with S = C1^(1/2), a symmetric form computed with eigh in float64.
// Bias: the plug-in estimate (unbiased covariances, ddof = 1) is biased upwards: for equal distributions it is > 0
// (the mean term alone by tr(C1)/N + tr(C2)/M on average). It compares means and covariances only, so it is blind
// to modes that keep them.
// Features: the `features` parameter is applied by the engine before compute(); this plugin ignores it.
// Statistics files: the (mu, sigma) .npz layout of pytorch-fid and clean-fid (arrays `mu` [D] and `sigma` [D, D],
// float64), read and written through plugins/common/npy.cpp (Debian's libzip). `stats` replaces the reference side's
// fit by the file's (read once, when the metric is made), so a TorchScript Inception network as `features` compares
// against published reference statistics; `save_stats` and `save_reference_stats` write the fits of each compute().
#include <fmt/format.h>

#include <tuple>

#include "../common/npy.hpp"
#include "flowlab/metric.hpp"

namespace {

constexpr const char* kOwner = "metric/frechet";

/// Mean [D] and unbiased covariance [D, D] of the rows of x [N, D] (float64).
std::pair<at::Tensor, at::Tensor> fit(const at::Tensor& x) {
  return {x.mean(0), at::cov(x.t()).reshape({x.size(1), x.size(1)})};
}

at::Tensor sqrtm_psd(const at::Tensor& c) {
  const auto [w, v] = at::linalg_eigh(c);
  return at::matmul(v * w.clamp_min(0).sqrt().unsqueeze(0), v.transpose(0, 1));
}

/// Options of metric/frechet.
struct FrechetOptions {
  std::string stats;                 ///< reference statistics (.npz with mu, sigma); empty: fit the reference
  std::string save_stats;            ///< where to write the samples' statistics; empty: nowhere
  std::string save_reference_stats;  ///< where to write the reference side's statistics; empty: nowhere
  explicit FrechetOptions(const flowlab::Params& p)
      : stats(p.str("stats")), save_stats(p.str("save_stats")), save_reference_stats(p.str("save_reference_stats")) {
    for (const char* name : {"stats", "save_stats", "save_reference_stats"}) {
      const std::string& v = p.str(name);
      if (!v.empty() && (v.size() < 4 || v.compare(v.size() - 4, 4, ".npz") != 0))
        throw flowlab::ParamError(kOwner, name, fmt::format("must end in .npz; got '{}'", v));
    }
  }
};

class FrechetMetric final : public flowlab::Metric {
 public:
  explicit FrechetMetric(const flowlab::Params& p) : opt_(p) {
    if (opt_.stats.empty()) return;
    mu_ = flowlab::npy::read_npz(kOwner, opt_.stats, "mu");
    sigma_ = flowlab::npy::read_npz(kOwner, opt_.stats, "sigma");
    if (!at::isFloatingType(mu_.scalar_type()) || !at::isFloatingType(sigma_.scalar_type()))
      throw flowlab::Error(fmt::format(
          "{}: '{}': mu and sigma must be floating point (float64 in pytorch-fid's layout)", kOwner, opt_.stats));
    mu_ = mu_.to(at::kDouble).flatten();
    sigma_ = sigma_.to(at::kDouble);
    const int64_t d = mu_.size(0);
    if (sigma_.dim() != 2 || sigma_.size(0) != d || sigma_.size(1) != d)
      throw flowlab::Error(fmt::format("{}: '{}': sigma has shape [{}], expected [{}, {}] for mu of [{}]", kOwner,
                                       opt_.stats, fmt::join(sigma_.sizes(), ", "), d, d, d));
  }
  bool uses_reference() const override { return opt_.stats.empty(); }
  double compute(const at::Tensor& samples, const at::Tensor& reference) const override {
    const at::Tensor a = samples.flatten(1).to(at::kCPU, at::kDouble);
    if (a.size(0) < 2)
      throw flowlab::Error("metric/frechet: needs at least 2 samples on each side, with the same dimension");
    const auto [mu_a, ca] = fit(a);
    at::Tensor mu_b = mu_, cb = sigma_;
    if (opt_.stats.empty()) {
      const at::Tensor b = reference.flatten(1).to(at::kCPU, at::kDouble);
      if (b.size(0) < 2 || a.size(1) != b.size(1))
        throw flowlab::Error("metric/frechet: needs at least 2 samples on each side, with the same dimension");
      std::tie(mu_b, cb) = fit(b);
    } else if (a.size(1) != mu_.size(0)) {
      throw flowlab::Error(
          fmt::format("{}: the samples have dimension {} (after `features`), the statistics in '{}' {}", kOwner,
                      a.size(1), opt_.stats, mu_.size(0)));
    }
    if (!opt_.save_stats.empty()) flowlab::npy::write_npz(kOwner, opt_.save_stats, {{"mu", mu_a}, {"sigma", ca}});
    if (!opt_.save_reference_stats.empty())
      flowlab::npy::write_npz(kOwner, opt_.save_reference_stats, {{"mu", mu_b}, {"sigma", cb}});
    const at::Tensor s = sqrtm_psd(ca);
    const at::Tensor cross = at::linalg_eigvalsh(at::matmul(at::matmul(s, cb), s)).clamp_min(0).sqrt().sum();
    return ((mu_a - mu_b).pow(2).sum() + ca.trace() + cb.trace() - 2 * cross).item<double>();
  }

 private:
  FrechetOptions opt_;
  at::Tensor mu_, sigma_;  // from `stats`, when given
};

}  // namespace

FLOWLAB_PLUGIN(
    metric, frechet, FrechetMetric, "1.1.0", "Frechet distance of Gaussian fits in data space (FID formula)",
    FLOWLAB_PARAM(features, string, "raw",
                  "raw, builtin:digits, builtin:fashion_mnist or torchscript:PATH; applied by the engine "
                  "before compute()")
        FLOWLAB_PARAM(stats, string, "",
                      "reference statistics: an .npz with mu [D] and sigma [D, D] (pytorch-fid/clean-fid "
                      "layout, float64) used instead of the reference samples' fit; empty: fit the reference")
            FLOWLAB_PARAM(save_stats, string, "",
                          "write the samples' mu and sigma (after features) to this .npz at each compute")
                FLOWLAB_PARAM(save_reference_stats, string, "",
                              "write the reference side's mu and sigma to this .npz at each compute"))
