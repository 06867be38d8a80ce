// Metrics: frechet against SciPy (tests/data/frechet_reference.csv, make_frechet_reference.py), w2 against SciPy's
// linear_sum_assignment (w2_reference.csv, make_w2_reference.py) and brute force, and the estimators' properties:
// zero on identical sets (or their exact O(1/N) value), unbiasedness, closed forms for Gaussians, a dropped mode.
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "flowlab/dataset.hpp"
#include "flowlab/metric.hpp"
#include "support.hpp"

using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

/// Sets A and B per case, and one value per case, from a reference CSV: "case,A|B,values..." and "case,<tag>,value".
struct ReferenceSets {
  std::map<int, at::Tensor> a, b;
  std::map<int, double> value;
};

ReferenceSets read_reference(const std::string& file, const std::string& value_tag) {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/" + file);
  REQUIRE(in.good());
  std::map<int, std::vector<std::vector<double>>> a, b;
  ReferenceSets out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::string k, tag, v;
    std::getline(ss, k, ','), std::getline(ss, tag, ',');
    std::vector<double> row;
    while (std::getline(ss, v, ',')) row.push_back(std::stod(v));
    if (tag == value_tag) out.value[std::stoi(k)] = row[0];
    else (tag == "A" ? a : b)[std::stoi(k)].push_back(row);
  }
  auto to_tensor = [](const std::vector<std::vector<double>>& rows) {
    std::vector<double> flat;
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    return at::tensor(flat, at::kDouble).reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  };
  for (const auto& [k, rows] : a) out.a[k] = to_tensor(rows);
  for (const auto& [k, rows] : b) out.b[k] = to_tensor(rows);
  return out;
}

std::shared_ptr<flowlab::Metric> metric(const std::string& name, const flowlab::Params& p = flowlab::Params()) {
  return registry().create<flowlab::Metric>("metric", name, p);
}

/// Standard normal CDF.
double phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

/// E|Z| for Z ~ N(mu, s^2).
double mean_abs_normal(double mu, double s) {
  return s * std::sqrt(2 / M_PI) * std::exp(-mu * mu / (2 * s * s)) + mu * (1 - 2 * phi(-mu / s));
}

/// W2 by brute force over all permutations (N == M).
double w2_brute_force(const at::Tensor& x, const at::Tensor& y) {
  const int64_t n = x.size(0);
  const at::Tensor c = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  double best = INFINITY;
  do {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += c[i][perm[static_cast<size_t>(i)]].item<double>();
    best = std::min(best, s);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return std::sqrt(best / static_cast<double>(n));
}

/// n points of the 8-mode ring (dataset/ring_gaussians: radius 4, std 0.3); with `drop_mode`, none from mode 0.
at::Tensor ring(int64_t n, bool drop_mode) {
  auto data = registry().create<flowlab::Dataset>("dataset", "ring_gaussians");
  const auto opts = at::TensorOptions(at::kDouble);
  if (!drop_mode) return data->sample(n, opts).x;
  at::Tensor kept = at::empty({0, 2}, opts);
  while (kept.size(0) < n) {
    const flowlab::Batch b = data->sample(n, opts);
    kept = at::cat({kept, b.x.index({b.label != 0})});
  }
  return kept.slice(0, 0, n);
}

/// x moved by an affine map so that its sample mean is 0 and its sample covariance c I: the moments of the full ring.
at::Tensor moment_matched(const at::Tensor& x, double c) {
  const at::Tensor xc = x - x.mean(0, true);
  const auto [w, v] = at::linalg_eigh(at::cov(xc.t()));
  const at::Tensor whiten = at::matmul(v * w.rsqrt().unsqueeze(0), v.t());
  return at::matmul(xc, whiten) * std::sqrt(c);
}

}  // namespace

TEST_CASE("metric/frechet: matches SciPy's sqrtm-based value", "[metric][metrics]") {
  const ReferenceSets ref = read_reference("frechet_reference.csv", "distance");
  REQUIRE(ref.value.size() == 3);
  auto m = metric("frechet");
  for (const auto& [k, d] : ref.value) {
    INFO("case " << k << ": expected " << d);
    CHECK(std::abs(m->compute(ref.a.at(k), ref.b.at(k)) - d) <= 1e-9 * (1 + std::abs(d)));
  }
}

TEST_CASE("metric/frechet: zero for identical sets, symmetric, and exact for shifted copies", "[metric][metrics]") {
  auto metric = registry().create<flowlab::Metric>("metric", "frechet");
  at::manual_seed(0);
  const at::Tensor x = at::randn({500, 4}, at::kDouble), y = at::randn({400, 4}, at::kDouble) * 2;
  CHECK(std::abs(metric->compute(x, x)) < 1e-9);
  CHECK(std::abs(metric->compute(x, y) - metric->compute(y, x)) < 1e-9);
  // A shifted copy has the same covariance: the distance is |shift|^2.
  CHECK(std::abs(metric->compute(x, x + at::tensor({1.0, 2.0, 0.0, -2.0}, at::kDouble)) - 9.0) < 1e-9);
  // Images are flattened.
  CHECK(std::abs(metric->compute(x.reshape({500, 1, 2, 2}), x.reshape({500, 1, 2, 2}))) < 1e-9);
}

// ---- w2 ----

TEST_CASE("metric/w2: equals brute force over all permutations on up to 8 points", "[metric][metrics]") {
  auto w2 = metric("w2");
  for (int64_t seed = 0; seed < 3; ++seed) {
    for (int64_t n = 1; n <= 8; ++n) {
      at::manual_seed(static_cast<uint64_t>(100 * seed + n));
      const int64_t d = 1 + (n + seed) % 3;
      const at::Tensor x = at::randn({n, d}, at::kDouble), y = at::randn({n, d}, at::kDouble) * 1.5 + 0.3;
      const double expected = w2_brute_force(x, y);
      INFO("seed " << seed << ", n " << n << ", d " << d << ": brute force " << expected);
      CHECK(std::abs(w2->compute(x, y) - expected) <= 1e-12 * (1 + expected));
      // float32 input on the same points (converted to float64 inside).
      const at::Tensor xf = x.to(at::kFloat), yf = y.to(at::kFloat);
      CHECK(std::abs(w2->compute(xf, yf) - w2_brute_force(xf.to(at::kDouble), yf.to(at::kDouble))) <= 1e-12 * (1 + expected));
    }
  }
}

TEST_CASE("metric/w2: matches SciPy's linear_sum_assignment to 1e-9 relative", "[metric][metrics]") {
  const ReferenceSets ref = read_reference("w2_reference.csv", "w2");
  REQUIRE(ref.value.size() == 3);
  REQUIRE(ref.a.at(0).size(0) == 500);
  auto w2 = metric("w2");
  for (const auto& [k, d] : ref.value) {
    INFO("case " << k << " (" << ref.a.at(k).size(0) << " x " << ref.b.at(k).size(0) << "): SciPy " << d);
    CHECK(std::abs(w2->compute(ref.a.at(k), ref.b.at(k)) - d) <= 1e-9 * d);
  }
}

TEST_CASE("metric/w2: N != M with a duplicated reference, a hand-computed 1D case, and quantile matching in 1D", "[metric][metrics]") {
  auto w2 = metric("w2");
  at::manual_seed(3);
  const at::Tensor x = at::randn({40, 3}, at::kDouble);
  // The reference is the set twice (M = 2N): each point sends its mass to its own copies.
  CHECK(w2->compute(x, at::cat({x, x})) < 1e-12);
  CHECK(w2->compute(at::cat({x, x, x}), x) < 1e-12);
  // 1D, x = {0, 1, 2}, y = {0, 3}: the quantile functions give 0 on [0,1/3), 1 on [1/3,1/2), 4 on [1/2,2/3),
  // 1 on [2/3,1), so W2^2 = 1/6 + 4/6 + 1/3 = 7/6.
  const at::Tensor a = at::tensor({2.0, 0.0, 1.0}, at::kDouble).reshape({3, 1}), b = at::tensor({3.0, 0.0}, at::kDouble).reshape({2, 1});
  CHECK(std::abs(w2->compute(a, b) - std::sqrt(7.0 / 6)) < 1e-12);
  CHECK(std::abs(w2->compute(b, a) - std::sqrt(7.0 / 6)) < 1e-12);
  // One generated point: all mass goes to it, W2^2 = mean squared distance.
  CHECK(std::abs(w2->compute(x.slice(0, 0, 1), x) - std::sqrt((x - x[0]).pow(2).sum(1).mean().item<double>())) < 1e-12);
  // In 1D the sliced distance is W2 by quantile matching (every direction is +-1): two implementations agree.
  auto sliced = metric("sliced_wasserstein", flowlab::Params().set("projections", int64_t{3}));
  for (auto [n, m] : {std::pair<int64_t, int64_t>{37, 23}, {50, 20}, {16, 64}, {30, 30}}) {
    const at::Tensor u = at::randn({n}, at::kDouble), v = at::rand({m}, at::kDouble) * 3;
    INFO(n << " x " << m);
    CHECK(std::abs(w2->compute(u, v) - sliced->compute(u, v)) < 1e-10);
  }
}

TEST_CASE("metric/w2: between 1D Gaussians close to sqrt(dmu^2 + dsigma^2)", "[metric][metrics]") {
  at::manual_seed(4);
  // Two samples of 2000: over seeds the estimate is 1.424 +- 0.032 (NumPy, 30 seeds); tolerance 0.15.
  const at::Tensor x = at::randn({2000, 1}, at::kDouble), y = 1.0 + 2.0 * at::randn({2000, 1}, at::kDouble);
  CHECK(std::abs(metric("w2")->compute(x, y) - std::sqrt(2.0)) < 0.15);
}

TEST_CASE("metric/w2: refuses sets above max_points with a message that says what to do", "[metric][metrics]") {
  auto w2 = metric("w2", flowlab::Params().set("max_points", int64_t{10}));
  const at::Tensor x = at::randn({11, 2}), y = at::randn({10, 2});
  CHECK(message_of<flowlab::Error>([&] { w2->compute(x, y); }) ==
        "metric/w2: the sets are too large for exact optimal transport (11 generated and 10 reference points; the "
        "limit is max_points = 10 per set, since the solver holds all N x M pairs and takes roughly cubic time). "
        "Subsample both sets to at most 10 points, raise max_points, or use metric/sliced_wasserstein");
  CHECK_NOTHROW(w2->compute(y, y));
  CHECK(message_of<flowlab::ParamError>([] { metric("w2", flowlab::Params().set("max_points", int64_t{0})); })
            .find("max_points") != std::string::npos);
}

TEST_CASE("metrics: each checks its inputs and names itself", "[metric][metrics]") {
  for (const std::string name : {"w2", "sliced_wasserstein", "energy", "mmd", "kid", "frechet"}) {
    INFO(name);
    auto m = metric(name);
    const std::string who = "metric/" + name + ": ";
    const auto msg = [&](const at::Tensor& a, const at::Tensor& b) { return message_of<flowlab::Error>([&] { m->compute(a, b); }); };
    CHECK(msg(at::randn({10, 2}), at::randn({10, 3})).rfind(who, 0) == 0);
    if (name == "frechet") continue;  // frechet's own checks (above) are unchanged
    CHECK(msg(at::randn({10, 2}), at::randn({10, 3})) ==
          who + "the generated samples have 2 values per point and the reference 3 (shapes 10x2 and 10x3, each "
                "flattened to [N, D])");
    at::Tensor bad = at::randn({10, 2});
    bad[3][1] = NAN;
    CHECK(msg(bad, at::randn({10, 2})) == who + "the generated samples contain NaN or Inf");
    CHECK(msg(at::randn({10, 2}), at::randint(5, {10, 2})).find("must be floating point") != std::string::npos);
    CHECK(msg(at::randn({0, 2}), at::randn({10, 2})).rfind(who + "needs at least", 0) == 0);
    // Images [N, C, H, W] are flattened; float32 and float64 agree.
    const at::Tensor img = at::randn({12, 1, 2, 2}, at::kDouble), ref = at::randn({9, 4}, at::kDouble);
    CHECK(std::abs(m->compute(img, ref) - m->compute(img.reshape({12, 4}).to(at::kFloat), ref.to(at::kFloat))) < 1e-5);
  }
  CHECK(message_of<flowlab::Error>([] { metric("energy")->compute(at::randn({1, 2}), at::randn({5, 2})); }) ==
        "metric/energy: needs at least 2 points in each set, got 1 generated and 5 reference");
}

TEST_CASE("metrics: the feature-space ones declare the features parameter", "[metric][metrics]") {
  for (const std::string name : {"frechet", "kid", "mmd"}) {
    const flowlab::Params p = flowlab::Params().set("features", std::string("builtin:digits"));
    CHECK_NOTHROW(metric(name, p));
  }
}

// ---- identical sets and unbiasedness ----

TEST_CASE("metrics: on identical sets w2 and sliced are 0, the unbiased estimators their exact O(1/N) value", "[metric][metrics]") {
  at::manual_seed(5);
  const int64_t n = 300;
  const at::Tensor x = at::randn({n, 3}, at::kDouble) * 0.5;
  CHECK(metric("w2")->compute(x, x) == 0.0);
  CHECK(metric("sliced_wasserstein")->compute(x, x) == 0.0);
  // Identical sets are not independent samples: with U-statistics within and the full mean across, an estimate
  // sum over pairs of h(d_ij) gives exactly 2/N (mean_{i != j} h - h(0)).
  const at::Tensor d2 = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1);
  const at::Tensor off = at::ones({n, n}, at::kBool).logical_xor(at::eye(n, at::kBool));
  const auto expected = [&](const at::Tensor& k, double k0) {
    return 2.0 / n * (k.masked_select(off).mean().item<double>() - k0);
  };
  const double energy = metric("energy")->compute(x, x);
  CHECK(std::abs(energy - expected(-d2.sqrt(), 0.0)) < 1e-12);
  CHECK(energy < 0);
  CHECK(std::abs(energy) < 2.0 / n * 2.0);  // 2/N times the mean distance (about 1.1 here)
  const flowlab::Params abs_bw = flowlab::Params().set("bandwidths", std::vector<double>{0.5, 1.0}).set("bandwidth_unit", std::string("absolute"));
  const double mmd = metric("mmd", abs_bw)->compute(x, x);
  CHECK(std::abs(mmd - expected(at::exp(-d2 / 0.5) + at::exp(-d2 / 2.0), 2.0)) < 1e-12);
  CHECK(std::abs(mmd) < 2.0 * 2.0 / n);  // 2/N times k(x, x) = 2 bandwidths
  const at::Tensor kxx = (at::matmul(x, x.t()) / 3.0 + 1).pow(3);
  const double kid = metric("kid", flowlab::Params().set("subsets", int64_t{0}))->compute(x, x);
  CHECK(std::abs(kid - 2.0 / n * (kxx.masked_select(off).mean().item<double>() - kxx.diagonal().mean().item<double>())) < 1e-12);
}

TEST_CASE("metrics: energy, mmd and kid are unbiased (mean 0 over independent equal-law pairs)", "[metric][metrics]") {
  // 400 pairs of independent 2D samples of 25 points from the same law: the mean estimate is 0 within 4 standard
  // errors. A V-statistic (diagonal kept within sets) would be off by about 2/N (k(0) - E k) = 0.05 for mmd,
  // several standard errors.
  at::manual_seed(6);
  std::map<std::string, std::vector<double>> values;
  const flowlab::Params kid_full = flowlab::Params().set("subsets", int64_t{0});
  const flowlab::Params mmd_abs = flowlab::Params().set("bandwidths", std::vector<double>{0.5, 1.0, 2.0}).set("bandwidth_unit", std::string("absolute"));
  auto energy = metric("energy"), mmd = metric("mmd", mmd_abs), kid = metric("kid", kid_full);
  for (int r = 0; r < 400; ++r) {
    const at::Tensor x = at::randn({25, 2}, at::kDouble), y = at::randn({25, 2}, at::kDouble);
    values["energy"].push_back(energy->compute(x, y));
    values["mmd"].push_back(mmd->compute(x, y));
    values["kid"].push_back(kid->compute(x, y));
  }
  for (const auto& [name, v] : values) {
    const at::Tensor t = at::tensor(v, at::kDouble);
    const double mean = t.mean().item<double>(), se = t.std().item<double>() / std::sqrt(400.0);
    INFO(name << ": mean " << mean << ", standard error " << se);
    CHECK(std::abs(mean) < 4 * se);
  }
}

// ---- closed forms for Gaussians ----

TEST_CASE("metric/sliced_wasserstein: W2 in 1D and |delta|/sqrt(D) for a mean shift", "[metric][metrics]") {
  at::manual_seed(7);
  // 1D: SW2 = W2 = |mu1 - mu2| for equal variances; over 30 seeds 2.000 +- 0.027 at these sizes: tolerance 0.12.
  const at::Tensor x = at::randn({4000, 1}, at::kDouble), y = 2.0 + at::randn({3000, 1}, at::kDouble);
  CHECK(std::abs(metric("sliced_wasserstein")->compute(x, y) - 2.0) < 0.12);
  // 2D, N(0, I) against N((2, 0), I): SW2^2 = E (theta . delta)^2 = |delta|^2 / 2, SW2 = sqrt(2). With 4096
  // projections, over 30 seeds 1.413 +- 0.021: tolerance 0.1.
  const at::Tensor a = at::randn({4000, 2}, at::kDouble), b = at::randn({4000, 2}, at::kDouble) + at::tensor({2.0, 0.0}, at::kDouble);
  const double sw = metric("sliced_wasserstein", flowlab::Params().set("projections", int64_t{4096}))->compute(a, b);
  CHECK(std::abs(sw - std::sqrt(2.0)) < 0.1);
  // The same seed gives the same directions; another seed other ones.
  auto s1 = metric("sliced_wasserstein", flowlab::Params().set("projections", int64_t{8}));
  CHECK(s1->compute(a, b) == s1->compute(a, b));
  CHECK(s1->compute(a, b) != metric("sliced_wasserstein", flowlab::Params().set("projections", int64_t{8}).set("seed", int64_t{1}))->compute(a, b));
}

TEST_CASE("metric/energy: two 1D Gaussians match the closed form", "[metric][metrics]") {
  at::manual_seed(8);
  // X ~ N(0, 1), Y ~ N(1, 1.5^2): D^2 = 2 E|X-Y| - E|X-X'| - E|Y-Y'|, E|X-Y| = E|N(1, 3.25)|, E|X-X'| = 2 sigma/sqrt(pi).
  const double expected = 2 * mean_abs_normal(1.0, std::sqrt(3.25)) - 2 / std::sqrt(M_PI) - 2 * 1.5 / std::sqrt(M_PI);
  // 10000 points each: standard deviation of the estimate about 0.02 (0.038 measured over 30 seeds at 3000 x 2500,
  // scaled by 1/sqrt(N)): tolerance 0.08 (the closed form is 0.488).
  const at::Tensor x = at::randn({10000}, at::kDouble), y = 1.0 + 1.5 * at::randn({10000}, at::kDouble);
  INFO("closed form " << expected);
  CHECK(std::abs(metric("energy")->compute(x, y) - expected) < 0.08);
}

TEST_CASE("metric/mmd: absolute RBF bandwidths between two Gaussians match the closed form", "[metric][metrics]") {
  at::manual_seed(9);
  // X ~ N(0, I_2), Y ~ N((1, 0), 0.8^2 I_2): E exp(-|X-Y|^2 / 2h^2) = (h^2 / (h^2 + s))^(D/2) exp(-|delta|^2 / 2(h^2 + s)),
  // s the sum of the two variances.
  const std::vector<double> hs{0.5, 1.0, 2.0};
  const auto ek = [](double h, double s, double delta2) {
    return (h * h / (h * h + s)) * std::exp(-delta2 / (2 * (h * h + s)));
  };
  double expected = 0;
  for (double h : hs) expected += ek(h, 2.0, 0) + ek(h, 2 * 0.64, 0) - 2 * ek(h, 1.64, 1.0);
  const at::Tensor x = at::randn({2000, 2}, at::kDouble), y = 0.8 * at::randn({2000, 2}, at::kDouble) + at::tensor({1.0, 0.0}, at::kDouble);
  const flowlab::Params p = flowlab::Params().set("bandwidths", hs).set("bandwidth_unit", std::string("absolute"));
  INFO("closed form " << expected);
  // Over 30 seeds 0.339 +- 0.017 at these sizes: tolerance 0.07.
  CHECK(std::abs(metric("mmd", p)->compute(x, y) - expected) < 0.07);
}

TEST_CASE("metric/kid: two 1D Gaussians match the closed form through the first three moments", "[metric][metrics]") {
  at::manual_seed(10);
  // In 1D, (xy + 1)^3 = sum_k C(3,k) x^k y^k, so MMD^2 = sum_k C(3,k) (E X^k - E Y^k)^2 = 3 dm1^2 + 3 dm2^2 + dm3^2.
  // X ~ N(0, 0.5^2): m = (0, 0.25, 0); Y ~ N(0.3, 0.5^2): m = (0.3, 0.09 + 0.25, 0.027 + 3 * 0.3 * 0.25).
  const double expected = 3 * 0.09 + 3 * 0.0081 + std::pow(0.252, 2);
  const at::Tensor x = 0.5 * at::randn({10000, 1}, at::kDouble), y = 0.3 + 0.5 * at::randn({10000, 1}, at::kDouble);
  INFO("closed form " << expected);
  // The estimate is 0.359 +- 0.026 over 30 seeds at 4000 points (NumPy), so about +- 0.017 at 10000: tolerance 0.08.
  CHECK(std::abs(metric("kid", flowlab::Params().set("subsets", int64_t{0}))->compute(x, y) - expected) < 0.08);
  // Subsets average the same unbiased estimate over pairs of subsets (50 of 1000 points: noisier, tolerance 0.15).
  const double sub = metric("kid", flowlab::Params().set("subsets", int64_t{50}).set("subset_size", int64_t{1000}))->compute(x, y);
  CHECK(std::abs(sub - expected) < 0.15);
}

// ---- a dropped mode ----

TEST_CASE("metrics: a sample missing one mode of the 8-mode ring scores clearly worse; frechet barely moves", "[metric][metrics]") {
  // Reference and a fresh full sample from dataset/ring_gaussians (radius 4, std 0.3); the other sample has no
  // point of mode 0 and is then moved by an affine map to mean 0 and covariance (r^2/2 + std^2) I, the full ring's
  // exact moments, so mean and covariance cannot tell it apart.
  at::manual_seed(11);
  const int64_t n = 2000;
  const double ring_var = 4.0 * 4.0 / 2 + 0.3 * 0.3;
  const at::Tensor reference = ring(n, false), fresh = ring(n, false), missing = moment_matched(ring(n, true), ring_var);
  const double frechet_fresh = metric("frechet")->compute(fresh, reference);
  const double frechet_missing = metric("frechet")->compute(missing, reference);
  INFO("frechet: fresh " << frechet_fresh << ", missing a mode " << frechet_missing);
  CHECK(frechet_missing < frechet_fresh + 0.1);  // both are sampling noise of a few 0.01 (trace of the covariances: 16.2)
  // Compared on the squared scale, where all five are mass-times-squared-distance quantities (energy, mmd and kid
  // report squares already; w2 and sliced_wasserstein are squared here): at least 3x the fresh sample's value.
  for (const std::string name : {"w2", "sliced_wasserstein", "energy", "mmd", "kid"}) {
    auto m = metric(name);
    const bool root = name == "w2" || name == "sliced_wasserstein";
    double f = m->compute(fresh, reference), d = m->compute(missing, reference);
    if (root) f *= f, d *= d;
    INFO(name << (root ? " squared" : "") << ": fresh " << f << ", missing a mode " << d);
    CHECK(d > 3 * std::abs(f));
  }
}
