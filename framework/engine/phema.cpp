// Post-hoc EMA (phema.hpp): EDM2's power-function profiles, their tracking during training and Algorithm 3.
#include "flowlab/phema.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "flowlab/errors.hpp"

namespace flowlab {

namespace {

void check_std(double std) {
  if (!(std > 0 && std < kPhemaMaxStd))
    throw Error(fmt::format("post-hoc EMA std {} is outside the reconstructable range (0, {:.6f}): a power-function "
                            "profile's relative std is below 1/sqrt(12), the uniform average over all of training",
                            std, kPhemaMaxStd));
}

}  // namespace

// The cubic has one root in (-inf, -1), one in (-1, 0) (f(-1) = 2 > 0 > f(0) = 12 - q) and the largest in (0, q)
// (f(q) > 0): bisection on (0, q) finds it to the last bit, without the eigenvalues np.roots takes.
double phema_exponent(double std) {
  check_std(std);
  const double q = 1.0 / (std * std);
  auto f = [q](double g) { return ((g + 7) * g + (16 - q)) * g + (12 - q); };
  double lo = 0, hi = q;
  for (int i = 0; i < 200 && hi - lo > 0; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (f(mid) < 0 ? lo : hi) = mid;
  }
  return std::abs(f(lo)) <= std::abs(f(hi)) ? lo : hi;
}

double phema_std(double gamma) { return std::sqrt((gamma + 1) / ((gamma + 2) * (gamma + 2) * (gamma + 3))); }

double phema_beta(double std, int64_t t) { return std::pow(1.0 - 1.0 / double(t), phema_exponent(std) + 1); }

double phema_correlation(double t_a, double std_a, double t_b, double std_b) {
  const double ga = phema_exponent(std_a), gb = phema_exponent(std_b);
  const double e = t_a < t_b ? gb : -ga;
  return (ga + 1) * (gb + 1) * std::pow(t_a / t_b, e) / ((ga + gb + 1) * std::max(t_a, t_b));
}

double phema_step_weight(int64_t s, int64_t t, double std) {
  if (s < 1 || s > t) return 0;
  const double g1 = phema_exponent(std) + 1;
  return (std::pow(double(s), g1) - std::pow(double(s - 1), g1)) / std::pow(double(t), g1);
}

PhemaFit phema_fit(const std::vector<int64_t>& steps, const std::vector<double>& stds, int64_t t, double std) {
  check_std(std);
  const size_t n = steps.size();
  if (n == 0 || stds.size() != n) throw Error("post-hoc EMA: no snapshots to reconstruct from");
  PhemaFit fit;
  for (size_t i = 0; i < n; ++i)
    if (steps[i] == t && stds[i] == std) {
      fit.exact = i;
      fit.coefficients.assign(n, 0.0);
      fit.coefficients[i] = 1.0;
      return fit;
    }
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  at::Tensor a = at::empty({int64_t(n), int64_t(n)}, dbl), b = at::empty({int64_t(n), 1}, dbl);
  auto A = a.accessor<double, 2>();
  auto B = b.accessor<double, 2>();
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) A[i][j] = phema_correlation(double(steps[i]), stds[i], double(steps[j]), stds[j]);
    B[i][0] = phema_correlation(double(steps[i]), stds[i], double(t), std);
  }
  at::Tensor x;
  try {
    x = at::linalg_solve(a, b);
  } catch (const std::exception& e) {
    throw Error(fmt::format("post-hoc EMA: the snapshots' profiles are linearly dependent (a step and std listed "
                            "twice?): {}",
                            e.what()));
  }
  x = x / x.sum();
  fit.coefficients.assign(x.data_ptr<double>(), x.data_ptr<double>() + n);
  for (const double c : fit.coefficients)
    if (!std::isfinite(c)) throw Error("post-hoc EMA: the snapshots' profiles are linearly dependent");
  // The profile the combination gives, step by step, against the target's.
  const int64_t last = std::max<int64_t>(t, *std::max_element(steps.begin(), steps.end()));
  std::vector<double> g1(n);
  for (size_t i = 0; i < n; ++i) g1[i] = phema_exponent(stds[i]) + 1;
  const double gt = phema_exponent(std) + 1;
  for (int64_t s = 1; s <= last; ++s) {
    double w = 0;
    for (size_t i = 0; i < n; ++i)
      if (s <= steps[i])
        w += fit.coefficients[i] * (std::pow(double(s), g1[i]) - std::pow(double(s - 1), g1[i])) /
             std::pow(double(steps[i]), g1[i]);
    const double target =
        s <= t ? (std::pow(double(s), gt) - std::pow(double(s - 1), gt)) / std::pow(double(t), gt) : 0.0;
    fit.profile_error += std::abs(w - target);
  }
  return fit;
}

std::vector<int64_t> phema_snapshot_steps(int64_t steps, int64_t snapshots) {
  std::vector<int64_t> out;
  for (int64_t i = 1; i <= snapshots; ++i) {
    const int64_t s = std::llround(double(steps) * double(i) / double(snapshots));
    if (s >= 1 && (out.empty() || s > out.back())) out.push_back(s);
  }
  return out;
}

PowerEma::PowerEma(const at::Tensor& flat, std::vector<double> stds, std::vector<int64_t> snapshot_steps)
    : stds_(std::move(stds)), snapshot_steps_(std::move(snapshot_steps)) {
  for (const double s : stds_) {
    exponents_.push_back(phema_exponent(s));
    averages_.push_back(flat.detach().clone());
  }
}

void PowerEma::update(const at::Tensor& flat, int64_t t) {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < stds_.size(); ++j)
    averages_[j].lerp_(flat, 1.0 - std::pow(1.0 - 1.0 / double(t), exponents_[j] + 1));  // eq. 127
  if (std::binary_search(snapshot_steps_.begin(), snapshot_steps_.end(), t))
    for (size_t j = 0; j < stds_.size(); ++j) snapshots_.push_back({t, stds_[j], averages_[j].clone()});
}

void PowerEma::save(torch::serialize::OutputArchive& archive) const {
  archive.write("phema_stds", at::tensor(stds_, at::kDouble));
  for (size_t j = 0; j < averages_.size(); ++j) archive.write(fmt::format("phema_average{}", j), averages_[j]);
  std::vector<int64_t> steps;
  std::vector<double> stds;
  for (size_t i = 0; i < snapshots_.size(); ++i) {
    steps.push_back(snapshots_[i].step), stds.push_back(snapshots_[i].std);
    archive.write(fmt::format("phema_snapshot{}", i), snapshots_[i].flat);
  }
  archive.write("phema_snapshot_steps", at::tensor(steps, at::kLong));
  archive.write("phema_snapshot_stds", at::tensor(stds, at::kDouble));
}

void PowerEma::load(torch::serialize::InputArchive& archive) {
  at::Tensor stds, steps, snap_stds;
  if (!archive.try_read("phema_stds", stds) || !archive.try_read("phema_snapshot_steps", steps) ||
      !archive.try_read("phema_snapshot_stds", snap_stds))
    throw Error("checkpoint: no post-hoc EMA state (train.phema) in it; delete it to train this trial from the start");
  if (stds.numel() != int64_t(stds_.size()) || !std::equal(stds_.begin(), stds_.end(), stds.data_ptr<double>()))
    throw Error("checkpoint: its post-hoc EMA keeps other stds than train.phema.stds; delete it to train this trial "
                "from the start");
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < averages_.size(); ++j) {
    at::Tensor a;
    archive.read(fmt::format("phema_average{}", j), a);
    if (a.numel() != averages_[j].numel()) throw Error("checkpoint: a post-hoc EMA average of another size");
    averages_[j].copy_(a);
  }
  snapshots_.clear();
  for (int64_t i = 0; i < steps.numel(); ++i) {
    at::Tensor f;
    archive.read(fmt::format("phema_snapshot{}", i), f);
    snapshots_.push_back({steps[i].item<int64_t>(), snap_stds[i].item<double>(), f.to(averages_.front().device())});
  }
}

at::Tensor phema_reconstruct(const std::vector<PhemaSnapshot>& snapshots, int64_t t, double std, PhemaFit* fit_out) {
  std::vector<int64_t> steps;
  std::vector<double> stds;
  for (const auto& s : snapshots) steps.push_back(s.step), stds.push_back(s.std);
  PhemaFit fit = phema_fit(steps, stds, t, std);
  at::Tensor out;
  if (fit.exact < snapshots.size()) {
    out = snapshots[fit.exact].flat.clone();
  } else {
    at::Tensor sum = at::zeros_like(snapshots.front().flat, at::kDouble);
    for (size_t i = 0; i < snapshots.size(); ++i) sum.add_(snapshots[i].flat.to(at::kDouble), fit.coefficients[i]);
    out = sum.to(snapshots.front().flat.scalar_type());
  }
  if (fit_out) *fit_out = std::move(fit);
  return out;
}

}  // namespace flowlab
