// Weightings as their sources define them, as weights on the velocity loss ||v - u||^2 (issue 25, part 5).
//
// For an affine path x_t = alpha x1 + sigma x0, u = alpha' x1 + sigma' x0, with D = alpha' sigma - alpha sigma':
//   eps_hat - eps = -(alpha / D) (v_hat - u),   x1_hat - x1 = (sigma / D) (v_hat - u),
// so a weight w_eps on ||eps_hat - eps||^2 is w_eps alpha^2 / D^2 on ||v_hat - u||^2 and w_x1 on ||x1_hat - x1||^2
// is w_x1 sigma^2 / D^2. Below, every affine path's alpha, sigma^2 and D^2 are written out by hand (not taken from
// the plugin), each weighting's source formula is converted with them, and the plugins must agree to 1e-12 on a
// 101-point grid. A separate test checks the conversion itself by solving the 2x2 system per sample.
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "flowlab/path.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/weighting.hpp"
#include "support.hpp"

using flowlab::Tensor;

using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

/// alpha, sigma^2 and D^2 = (alpha' sigma - alpha sigma')^2 of one path at times t, written out by hand.
struct HandSchedule {
  Tensor alpha, sigma2, d2;
};

/// One affine path plugin with its options and its schedule by hand.
struct PathCase {
  std::string label, name;
  flowlab::Params params;
  std::function<HandSchedule(const Tensor&)> hand;
};

flowlab::Params with(const std::string& key, double v) {
  flowlab::Params p;
  p.set(key, v);
  return p;
}

std::vector<PathCase> path_cases() {
  std::vector<PathCase> c;
  // rectified: alpha = t, sigma = 1 - t, alpha' = 1, sigma' = -1: D = 1 (1 - t) - t (-1) = 1.
  c.push_back({"rectified", "rectified", {}, [](const Tensor& t) {
                 return HandSchedule{t, (1 - t).pow(2), at::ones_like(t)};
               }});
  // cosine: alpha = sin(pi t/2), sigma = cos(pi t/2), alpha' = (pi/2) cos, sigma' = -(pi/2) sin: D = pi/2.
  c.push_back({"cosine", "cosine", {}, [](const Tensor& t) {
                 return HandSchedule{at::sin(M_PI / 2 * t), at::cos(M_PI / 2 * t).pow(2),
                                     at::full_like(t, M_PI * M_PI / 4)};
               }});
  // lipman_ot: alpha = t, sigma = 1 - k t (k = 1 - sigma_min), alpha' = 1, sigma' = -k: D = (1 - k t) + k t = 1.
  for (double sigma_min : {1e-4, 0.2}) {
    const double k = 1 - sigma_min;
    c.push_back({"lipman_ot(sigma_min=" + std::to_string(sigma_min) + ")", "lipman_ot", with("sigma_min", sigma_min),
                 [k](const Tensor& t) { return HandSchedule{t, (1 - k * t).pow(2), at::ones_like(t)}; }});
  }
  // vp (beta_min 0.1, beta_max 20), s = 1 - t: T = 0.1 s + 9.95 s^2, beta = 0.1 + 19.9 s, alpha = exp(-T/2),
  // sigma^2 = 1 - exp(-T), alpha' = beta alpha / 2, sigma' = -alpha alpha' / sigma:
  // D = alpha' sigma + alpha^2 alpha' / sigma = alpha' / sigma, D^2 = alpha'^2 / sigma^2.
  c.push_back({"vp", "vp", {}, [](const Tensor& t) {
                 const Tensor s = 1 - t;
                 const Tensor big_t = 0.1 * s + 9.95 * s * s;
                 const Tensor alpha = at::exp(-big_t / 2);
                 const Tensor sigma2 = -at::expm1(-big_t);
                 const Tensor d_alpha = (0.1 + 19.9 * s) * alpha / 2;
                 return HandSchedule{alpha, sigma2, d_alpha.pow(2) / sigma2};
               }});
  // vp_linear: alpha = t, sigma = sqrt(1 - t^2), alpha' = 1, sigma' = -t / sigma:
  // D = sigma + t^2 / sigma = 1 / sigma, D^2 = 1 / (1 - t^2).
  c.push_back({"vp_linear", "vp_linear", {}, [](const Tensor& t) {
                 return HandSchedule{t, 1 - t * t, 1 / (1 - t * t)};
               }});
  // polynomial: alpha = t^n, sigma = 1 - t^n, alpha' = n t^(n-1), sigma' = -n t^(n-1):
  // D = n t^(n-1) (1 - t^n) + t^n n t^(n-1) = n t^(n-1), D^2 = n^2 t^(2n-2).
  for (double n : {2.0, 0.5}) {
    c.push_back({"polynomial(n=" + std::to_string(n) + ")", "polynomial", with("n", n), [n](const Tensor& t) {
                   return HandSchedule{t.pow(n), (1 - t.pow(n)).pow(2), n * n * t.pow(2 * n - 2)};
                 }});
  }
  return c;
}

/// One weighting plugin with its options, and its weight on ||v - u||^2 from a hand schedule (`t` for the ones
/// that depend on t alone).
struct WeightingCase {
  std::string label, name;
  flowlab::Params params;
  std::function<Tensor(const Tensor& t, const HandSchedule&)> expected;
};

std::vector<WeightingCase> weighting_cases() {
  std::vector<WeightingCase> c;
  // uniform (Lipman et al. 2023 eq. 9): 1 on the velocity loss.
  c.push_back({"uniform", "uniform", {}, [](const Tensor& t, const HandSchedule&) { return at::ones_like(t); }});
  // endpoint (training text 004, on the velocity loss): t^2 or (1 - t)^2 whatever the path.
  c.push_back({"endpoint(end=data)", "endpoint", {}, [](const Tensor& t, const HandSchedule&) { return t * t; }});
  flowlab::Params noise_end;
  noise_end.set("end", std::string("noise"));
  c.push_back({"endpoint(end=noise)", "endpoint", noise_end,
               [](const Tensor& t, const HandSchedule&) { return (1 - t) * (1 - t); }});
  // snr (training text 004, on the velocity loss): 1/SNR = sigma^2 / alpha^2, clipped at max_weight (1e4).
  c.push_back({"snr", "snr", {}, [](const Tensor&, const HandSchedule& h) {
                 return (h.sigma2 / (h.alpha * h.alpha)).clamp_max(1e4);
               }});
  for (double gamma : {5.0, 0.5}) {
    // min_snr (Hang et al. 2023): min(SNR, gamma) / SNR on the eps loss, times alpha^2 / D^2:
    // min(alpha^2 / sigma^2, gamma) sigma^2 / alpha^2 * alpha^2 / D^2 = min(alpha^2, gamma sigma^2) / D^2.
    c.push_back({"min_snr(gamma=" + std::to_string(gamma) + ")", "min_snr", with("gamma", gamma),
                 [gamma](const Tensor&, const HandSchedule& h) {
                   return at::minimum(h.alpha * h.alpha, gamma * h.sigma2) / h.d2;
                 }});
    // min_snr, loss = velocity: min(SNR, gamma) on the velocity loss itself (flowlab 1.x).
    flowlab::Params v = with("gamma", gamma);
    v.set("loss", std::string("velocity"));
    c.push_back({"min_snr(gamma=" + std::to_string(gamma) + ", loss=velocity)", "min_snr", v,
                 [gamma](const Tensor&, const HandSchedule& h) {
                   return (h.alpha * h.alpha / h.sigma2).clamp_max(gamma);
                 }});
  }
  return c;
}

std::shared_ptr<flowlab::Path> make_path(const PathCase& p) {
  return registry().create<flowlab::Path>("path", p.name, p.params);
}

std::shared_ptr<flowlab::Weighting> make_weighting(const WeightingCase& w) {
  return registry().create<flowlab::Weighting>("weighting", w.name, w.params);
}

/// The 101-point grid i / 100 moved into the path's domain (open ends to kTimeMargin / 1 - kTimeMargin), double.
Tensor grid(const flowlab::Path& path) { return path.clamp_to_domain(at::linspace(0, 1, 101, at::kDouble)); }

/// The expected weight at t, with min_snr's documented rule where the hand formula is not finite (0/0 where D = 0:
/// polynomial n > 1 at t = 0): the formula at t clamped into [kTimeMargin, 1 - kTimeMargin].
Tensor expected_at(const WeightingCase& wc, const PathCase& pc, const Tensor& t) {
  const Tensor e = wc.expected(t, pc.hand(t));
  const Tensor inside = t.clamp(flowlab::kTimeMargin, 1 - flowlab::kTimeMargin);
  return at::where(at::isfinite(e), e, wc.expected(inside, pc.hand(inside)));
}

}  // namespace

TEST_CASE("contract: every affine path plugin has its schedule written out by hand here", "[weighting][contract]") {
  std::set<std::string> covered;
  for (const auto& p : path_cases()) covered.insert(p.name);
  for (const auto& info : registry().list("path")) {
    INFO("path/" << info.name);
    if (registry().create<flowlab::Path>("path", info.name)->affine()) CHECK(covered.count(info.name) == 1);
  }
  // And every weighting plugin has its converted formula here.
  std::set<std::string> weightings;
  for (const auto& w : weighting_cases()) weightings.insert(w.name);
  for (const auto& info : registry().list("weighting")) {
    INFO("weighting/" << info.name);
    CHECK(weightings.count(info.name) == 1);
  }
}

TEST_CASE("contract: each weighting's weight on ||v - u||^2 equals its source's formula converted by hand, on every "
          "affine path (101 times, float64, 1e-12)",
          "[weighting][contract]") {
  const auto weightings = weighting_cases();
  for (const auto& pc : path_cases()) {
    auto path = make_path(pc);
    const Tensor t = grid(*path);
    REQUIRE(t.size(0) == 101);
    std::map<std::string, Tensor> got;
    for (const auto& wc : weightings) {
      INFO("path " << pc.label << ", weighting " << wc.label);
      const Tensor w = make_weighting(wc)->weight(t, *path);
      const Tensor e = expected_at(wc, pc, t);
      REQUIRE(at::isfinite(e).all().item<bool>());
      REQUIRE(w.sizes() == t.sizes());
      const double err = ((w - e).abs() / (1 + e.abs())).max().item<double>();
      INFO("max |w - expected| / (1 + |expected|) = " << err);
      CHECK(err < 1e-12);
      got[wc.label] = w;
    }
    // The grid tells the weightings apart on this path: a test above would fail if one plugin returned another's
    // weight.
    for (const auto& a : got)
      for (const auto& b : got)
        if (a.first < b.first) {
          INFO("path " << pc.label << ": " << a.first << " vs " << b.first);
          CHECK(max_abs(a.second - b.second) > 1e-3);
        }
  }
}

TEST_CASE("min_snr in closed form on the rectified and cosine paths", "[weighting]") {
  const Tensor t = at::linspace(0, 1, 101, at::kDouble);
  auto min_snr = registry().create<flowlab::Weighting>("weighting", "min_snr");
  // rectified: min(SNR, 5) / SNR * t^2 = min(t^2, 5 (1 - t)^2); 0 at t = 0 and t = 1.
  auto rectified = registry().create<flowlab::Path>("path", "rectified");
  CHECK(max_abs(min_snr->weight(t, *rectified) - at::minimum(t * t, 5 * (1 - t).pow(2))) < 1e-15);
  // cosine: min(sin^2, 5 cos^2)(pi t / 2) / (pi / 2)^2.
  auto cosine = registry().create<flowlab::Path>("path", "cosine");
  const Tensor s = at::sin(M_PI / 2 * t), c = at::cos(M_PI / 2 * t);
  CHECK(max_abs(min_snr->weight(t, *cosine) - at::minimum(s * s, 5 * c * c) / (M_PI * M_PI / 4)) < 1e-15);
  // loss = velocity: flowlab 1.x's min(SNR, 5) on ||v - u||^2.
  flowlab::Params v;
  v.set("loss", std::string("velocity"));
  const Tensor inner = t.slice(0, 1, 100);
  CHECK(max_abs(registry().create<flowlab::Weighting>("weighting", "min_snr", v)->weight(inner, *rectified) -
                (inner / (1 - inner)).pow(2).clamp_max(5.0)) < 1e-12);
}

TEST_CASE("the conversion: w_eps |eps_hat - eps|^2 = w_x1 |x1_hat - x1|^2 = w |v_hat - u|^2 per sample, from a 2x2 "
          "solve, on every affine path",
          "[weighting][contract]") {
  constexpr int64_t kB = 256, kD = 7;
  const double gamma = 5;
  auto min_snr = registry().create<flowlab::Weighting>("weighting", "min_snr");
  flowlab::Params endpoint_noise;
  endpoint_noise.set("end", std::string("noise"));
  flowlab::Params velocity;
  velocity.set("loss", std::string("velocity"));
  const std::vector<std::pair<std::string, std::shared_ptr<flowlab::Weighting>>> others = {
      {"uniform", registry().create<flowlab::Weighting>("weighting", "uniform")},
      {"endpoint(data)", registry().create<flowlab::Weighting>("weighting", "endpoint")},
      {"endpoint(noise)", registry().create<flowlab::Weighting>("weighting", "endpoint", endpoint_noise)},
      {"snr", registry().create<flowlab::Weighting>("weighting", "snr")},
      {"min_snr(loss=velocity)", registry().create<flowlab::Weighting>("weighting", "min_snr", velocity)}};
  at::manual_seed(25);
  for (const auto& pc : path_cases()) {
    INFO("path " << pc.label);
    auto path = make_path(pc);
    const Tensor t = path->clamp_to_domain(at::rand({kB}, at::kDouble) * 0.96 + 0.02);
    const Tensor x0 = at::randn({kB, kD}, at::kDouble), x1 = at::randn({kB, kD}, at::kDouble);
    const flowlab::PathSample ps = path->sample(x0, x1, t);
    const Tensor v_hat = ps.ut + at::randn({kB, kD}, at::kDouble);
    // [alpha sigma; alpha' sigma'] [x1_hat; eps_hat] = [x_t; v_hat], solved per sample by LAPACK.
    const flowlab::Schedule s = path->schedule(t);
    const Tensor m = at::stack({at::stack({s.alpha, s.sigma}, 1), at::stack({s.d_alpha, s.d_sigma}, 1)}, 1);  // [B,2,2]
    const Tensor sol = at::linalg_solve(m, at::stack({ps.xt, v_hat}, 1));                                     // [B,2,D]
    const Tensor x1_hat = sol.select(1, 0), eps_hat = sol.select(1, 1);
    // The signs of the derivation: eps_hat - eps = -(alpha / D)(v_hat - u), x1_hat - x1 = (sigma / D)(v_hat - u).
    const Tensor d = (s.d_alpha * s.sigma - s.alpha * s.d_sigma).unsqueeze(1);
    CHECK(max_abs(eps_hat - x0 + s.alpha.unsqueeze(1) / d * (v_hat - ps.ut)) < 1e-9);
    CHECK(max_abs(x1_hat - x1 - s.sigma.unsqueeze(1) / d * (v_hat - ps.ut)) < 1e-9);

    const Tensor snr = s.alpha.pow(2) / s.sigma.pow(2);
    const Tensor on_eps = snr.clamp_max(gamma) / snr * (eps_hat - x0).pow(2).sum(1);  // Hang et al., eps prediction
    const Tensor on_x1 = snr.clamp_max(gamma) * (x1_hat - x1).pow(2).sum(1);          // Hang et al., x0 prediction
    const Tensor err_v = (v_hat - ps.ut).pow(2).sum(1);
    const Tensor on_v = min_snr->weight(t, *path) * err_v;
    CHECK(((on_eps - on_v).abs() / on_v).max().item<double>() < 1e-9);
    CHECK(((on_x1 - on_v).abs() / on_v).max().item<double>() < 1e-9);
    // Another weighting's weight in min_snr's place breaks the equality on some sample.
    for (const auto& [label, w] : others) {
      INFO("in min_snr's place: " << label);
      CHECK(((on_eps - w->weight(t, *path) * err_v).abs() / on_eps).max().item<double>() > 1e-3);
    }
  }
}

TEST_CASE("weights are finite and >= 0 over every affine path's domain, float32 and float64, every option",
          "[weighting]") {
  for (const auto& pc : path_cases()) {
    auto path = make_path(pc);
    for (auto dtype : {at::kFloat, at::kDouble}) {
      // 1001 times from 0 to 1, the closed ends included, the open ends at the engine's margin.
      const Tensor t = path->clamp_to_domain(at::linspace(0, 1, 1001, dtype));
      for (const auto& wc : weighting_cases()) {
        INFO("path " << pc.label << ", weighting " << wc.label << ", "
                     << (dtype == at::kFloat ? "float32" : "float64"));
        const Tensor w = make_weighting(wc)->weight(t, *path);
        CHECK(w.scalar_type() == dtype);
        CHECK(at::isfinite(w).all().item<bool>());
        CHECK(w.min().item<double>() >= 0);
      }
    }
  }
  // The rule where the conversion is 0/0 (polynomial n = 2 at t = 0, D = 2t = 0): the weight at t = kTimeMargin,
  // (1e-5)^2 / 4 next to the limit 0.
  auto poly = registry().create<flowlab::Path>("path", "polynomial");
  auto min_snr = registry().create<flowlab::Weighting>("weighting", "min_snr");
  const double at0 = min_snr->weight(at::zeros({1}, at::kDouble), *poly).item<double>();
  const double rule = flowlab::kTimeMargin * flowlab::kTimeMargin / 4;
  CHECK(std::abs(at0 - rule) < 1e-12 * rule);
}

TEST_CASE("min_snr's options and paths: full-text errors", "[weighting][errors]") {
  flowlab::Params bad_loss;
  bad_loss.set("loss", std::string("x0"));
  CHECK(message_of<flowlab::Error>([&] { registry().create<flowlab::Weighting>("weighting", "min_snr", bad_loss); }) ==
        "weighting/min_snr: parameter 'loss' must be one of eps, velocity, got 'x0'");
  flowlab::Params bad_gamma;
  bad_gamma.set("gamma", -1.0);
  CHECK(message_of<flowlab::Error>([&] { registry().create<flowlab::Weighting>("weighting", "min_snr", bad_gamma); }) ==
        "weighting/min_snr: parameter 'gamma' must be > 0, got -1");
  auto bridge = registry().create<flowlab::Path>("path", "bridge");
  const Tensor t = at::full({2}, 0.5, at::kDouble);
  for (const std::string loss : {"eps", "velocity"}) {
    flowlab::Params p;
    p.set("loss", loss);
    INFO("loss = " << loss);
    CHECK(message_of<flowlab::Error>(
              [&] { registry().create<flowlab::Weighting>("weighting", "min_snr", p)->weight(t, *bridge); }) ==
          "weighting/min_snr: needs an affine path (one with an alpha/sigma schedule)");
  }
}
