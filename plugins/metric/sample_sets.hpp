// Helpers shared by the metric plugins in this directory (not part of the SDK): checking two sample sets, and
// sums of a pairwise function over tiles, so that 10 000 x 10 000 pairs never need 10^8 values at once.
// Everything is float64 on the device the tensors are on.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "flowlab/errors.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab::metric_detail {

/// Rows per tile of a pairwise sum: a tile holds at most kTile x kTile float64 values (8 MiB, so that the few
/// tiles an elementwise kernel chain touches stay in cache).
constexpr int64_t kTile = 1024;

/// A sample set [N, ...] as float64 points [N, D] on its own device (a 1-D tensor [N] is N points in 1D).
/// Errors name the plugin ("metric/w2: ...") and say which set is wrong.
inline at::Tensor points(const at::Tensor& x, const std::string& plugin, const char* which) {
  if (!x.defined() || x.dim() == 0)
    throw Error(fmt::format("{}: the {} must be a tensor [N, ...] with one row per point, got a scalar or nothing",
                            plugin, which));
  if (!at::isFloatingType(x.scalar_type()))
    throw Error(fmt::format("{}: the {} must be floating point, got {}", plugin, which,
                            std::string(c10::toString(x.scalar_type()))));
  const at::Tensor p = x.dim() == 1 ? x.reshape({x.size(0), 1}) : x.flatten(1);
  if (p.size(0) > 0 && p.size(1) == 0)
    throw Error(fmt::format("{}: the {} have zero features per point", plugin, which));
  if (!at::isfinite(p).all().item<bool>()) throw Error(fmt::format("{}: the {} contain NaN or Inf", plugin, which));
  return p.to(at::kDouble).contiguous();
}

/// Both sets as float64 points; checks that each has at least `min_rows` points and that the dimensions agree.
inline std::pair<at::Tensor, at::Tensor> sample_sets(const at::Tensor& samples, const at::Tensor& reference,
                                                     const std::string& plugin, int64_t min_rows) {
  at::Tensor a = points(samples, plugin, "generated samples"), b = points(reference, plugin, "reference samples");
  if (a.size(0) < min_rows || b.size(0) < min_rows)
    throw Error(fmt::format("{}: needs at least {} point{} in each set, got {} generated and {} reference", plugin,
                            min_rows, min_rows == 1 ? "" : "s", a.size(0), b.size(0)));
  if (a.size(1) != b.size(1))
    throw Error(fmt::format("{}: the generated samples have {} values per point and the reference {} (shapes {} and "
                            "{}, each flattened to [N, D])",
                            plugin, a.size(1), b.size(1), fmt::join(samples.sizes(), "x"),
                            fmt::join(reference.sizes(), "x")));
  if (a.device() != b.device()) b = b.to(a.device());
  return {a, b};
}

/// Squared Euclidean distances [n, m] between the rows of a [n, D] and b [m, D]. Up to 16 features the
/// differences are formed directly (no cancellation); above, |a|^2 + |b|^2 - 2 a.b with BLAS, clamped at 0 (callers
/// centre the sets first, which keeps the cancellation small).
inline at::Tensor squared_distances(const at::Tensor& a, const at::Tensor& b) {
  const int64_t d = a.size(1);
  if (d <= 16) {
    at::Tensor acc = at::zeros({a.size(0), b.size(0)}, a.options());
    for (int64_t k = 0; k < d; ++k) {
      const at::Tensor diff = a.select(1, k).unsqueeze(1) - b.select(1, k).unsqueeze(0);
      acc.addcmul_(diff, diff);
    }
    return acc;
  }
  at::Tensor g = at::matmul(a, b.t()).mul_(-2);
  g.add_(a.pow(2).sum(1, true)).add_(b.pow(2).sum(1).unsqueeze(0));
  return g.clamp_min_(0);
}

/// Sum of f(a_tile, b_tile) (a tensor [rows of a_tile, rows of b_tile]) over all pairs (i, j). With `same`
/// (b is a), the pairs i == j are left out and each tile pair above the diagonal is computed once and counted twice.
template <class F>
double pair_sum(const at::Tensor& a, const at::Tensor& b, bool same, F&& f) {
  const int64_t n = a.size(0), m = b.size(0);
  at::Tensor total = at::zeros({}, a.options());
  for (int64_t i = 0; i < n; i += kTile) {
    const at::Tensor ai = a.slice(0, i, std::min(n, i + kTile));
    for (int64_t j = same ? i : 0; j < m; j += kTile) {
      at::Tensor k = f(ai, b.slice(0, j, std::min(m, j + kTile)));
      if (same && i == j) {
        k.fill_diagonal_(0);
        total.add_(k.sum());
      } else {
        total.add_(k.sum(), same ? 2.0 : 1.0);
      }
    }
  }
  return total.item<double>();
}

/// An unbiased MMD^2 for the kernel f (applied to tiles as in pair_sum): U-statistics within each set, the mean
/// over all N x M pairs across. Needs at least 2 points per set.
template <class F>
double unbiased_mmd2(const at::Tensor& x, const at::Tensor& y, F&& f) {
  const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
  return pair_sum(x, x, true, f) / (n * (n - 1)) + pair_sum(y, y, true, f) / (m * (m - 1)) -
         2 * pair_sum(x, y, false, f) / (n * m);
}

/// A CPU generator seeded with `seed`, so a metric's randomness does not touch (or depend on) the global one.
inline at::Generator seeded_generator(int64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  return g;
}

}  // namespace flowlab::metric_detail
