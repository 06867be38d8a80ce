// Paths: d/dt x_t = u_t by float64 central differences, endpoints, conversion round trips, equivalences and
// bad parameters. The derivative and round-trip checks run over every path plugin in the registry.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/generators/catch_generators_range.hpp>

#include <cmath>

#include "flowlab/path.hpp"
#include "flowlab/registry.hpp"
#include "support.hpp"

using flowlab::Tensor;

using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {


std::shared_ptr<flowlab::Path> path(const std::string& name, const flowlab::Params& p = flowlab::Params()) {
  return registry().create<flowlab::Path>("path", name, p);
}

std::vector<std::string> path_names() {
  std::vector<std::string> names;
  for (const auto& info : registry().list("path")) names.push_back(info.name);
  return names;
}


struct Endpoints {
  Tensor x0, x1, eps;
};

Endpoints endpoints() {
  at::manual_seed(7);
  return {at::randn({6, 3}, at::kDouble), at::randn({6, 3}, at::kDouble), at::randn({6, 3}, at::kDouble)};
}

Tensor times(double t) { return at::full({6}, t, at::kDouble); }

}  // namespace

TEST_CASE("contract: d/dt x_t equals u_t for every path (central differences, float64)", "[path][contract]") {
  const std::string name = GENERATE_COPY(from_range(path_names()));
  INFO("path/" << name);
  auto p = path(name);
  const auto e = endpoints();
  const double h = 1e-5;
  for (double t : {0.1, 0.3, 0.5, 0.7, 0.9}) {
    auto xt = [&](double s) { return p->sample(e.x0, e.x1, times(s), e.eps).xt; };
    const Tensor u = p->sample(e.x0, e.x1, times(t), e.eps).ut;
    const Tensor d1 = (xt(t + h) - xt(t - h)) / (2 * h);
    const Tensor d2 = (xt(t + 2 * h) - xt(t - 2 * h)) / (4 * h);
    // The truncation error of d1 is about |d1 - d2| / 3 (it scales with h^2); allow 3x that, plus round-off
    // of the difference quotient (machine eps * |x| / h).
    const double tol = max_abs(d1 - d2) + 10 * 2.2e-16 * (1 + max_abs(xt(t))) / h;
    INFO("t = " << t << ", |d1 - u| = " << max_abs(d1 - u) << ", tol = " << tol);
    CHECK(max_abs(d1 - u) <= tol);
  }
}

TEST_CASE("contract: paths start at x0 and end at x1, up to their sigma-blur", "[path][contract]") {
  const std::string name = GENERATE_COPY(from_range(path_names()));
  INFO("path/" << name);
  auto p = path(name);
  const auto e = endpoints();
  CHECK(max_abs(p->sample(e.x0, e.x1, times(0.0), e.eps).xt - e.x0) <= 0.01 * max_abs(e.x1));
  CHECK(max_abs(p->sample(e.x0, e.x1, times(1.0), e.eps).xt - e.x1) <= 0.01 * max_abs(e.x0));
}

TEST_CASE("endpoint values are exact where the schedule says so", "[path]") {
  const auto e = endpoints();
  for (const char* name : {"rectified", "cosine", "polynomial", "vp_linear", "bridge"}) {
    INFO(name);
    auto p = path(name);
    CHECK(max_abs(p->sample(e.x0, e.x1, times(0.0), e.eps).xt - e.x0) < 1e-15);
    CHECK(max_abs(p->sample(e.x0, e.x1, times(1.0), e.eps).xt - e.x1) < 1e-15);
  }
  flowlab::Params sm;
  sm.set("sigma_min", 0.1);
  CHECK(max_abs(path("lipman_ot", sm)->sample(e.x0, e.x1, times(1.0)).xt - (e.x1 + 0.1 * e.x0)) < 1e-15);
  // Song's VP with beta in [0.1, 20]: alpha_0 = exp(-(0.1 + 9.95) / 2).
  const double a0 = std::exp(-0.5 * (0.1 + 0.5 * 19.9));
  CHECK(max_abs(path("vp")->sample(e.x0, e.x1, times(0.0)).xt - (a0 * e.x1 + std::sqrt(1 - a0 * a0) * e.x0)) < 1e-14);
}

TEST_CASE("contract: affine conversions round-trip to 1e-10 in float64", "[path][contract]") {
  const std::string name = GENERATE_COPY(from_range(path_names()));
  auto p = path(name);
  if (!p->affine()) {
    CHECK_THROWS_AS(p->schedule(times(0.5)), flowlab::Error);
    return;
  }
  INFO("path/" << name);
  const auto e = endpoints();
  for (double t : {0.1, 0.4, 0.6, 0.9}) {
    const Tensor tt = times(t);
    const auto s = p->sample(e.x0, e.x1, tt);
    INFO("t = " << t);
    CHECK(max_abs(p->velocity_to_x1(s.xt, s.ut, tt) - e.x1) <= 1e-10 * (1 + max_abs(e.x1)));
    CHECK(max_abs(p->velocity_to_eps(s.xt, s.ut, tt) - e.x0) <= 1e-10 * (1 + max_abs(e.x0)));
    CHECK(max_abs(p->x1_to_velocity(s.xt, p->velocity_to_x1(s.xt, s.ut, tt), tt) - s.ut) <= 1e-10 * (1 + max_abs(s.ut)));
    CHECK(max_abs(p->eps_to_velocity(s.xt, p->velocity_to_eps(s.xt, s.ut, tt), tt) - s.ut) <= 1e-10 * (1 + max_abs(s.ut)));
  }
}

TEST_CASE("special cases coincide with the rectified path", "[path]") {
  const auto e = endpoints();
  const Tensor t = at::rand({6}, at::kDouble);
  const auto ref = path("rectified")->sample(e.x0, e.x1, t);
  CHECK(max_abs(ref.ut - (e.x1 - e.x0)) < 1e-15);
  flowlab::Params n1, s0, b0;
  n1.set("n", 1.0), s0.set("sigma_min", 0.0), b0.set("sigma", 0.0);
  for (const auto& other : {path("polynomial", n1), path("lipman_ot", s0), path("bridge", b0)}) {
    const auto s = other->sample(e.x0, e.x1, t, e.eps);
    CHECK(max_abs(s.xt - ref.xt) < 1e-15);
    CHECK(max_abs(s.ut - ref.ut) < 1e-15);
  }
}

TEST_CASE("schedules match their formulas", "[path]") {
  const Tensor t = at::tensor({0.25, 0.5}, at::kDouble);
  auto vpl = path("vp_linear")->schedule(t);
  CHECK(max_abs(vpl.sigma - at::sqrt(1 - t * t)) < 1e-15);
  auto cos = path("cosine")->schedule(t);
  CHECK(std::abs(cos.alpha[1].item<double>() - std::sqrt(0.5)) < 1e-15);
  flowlab::Params n3;
  n3.set("n", 3.0);
  auto poly = path("polynomial", n3)->schedule(t);
  CHECK(std::abs(poly.alpha[1].item<double>() - 0.125) < 1e-15);
  CHECK(std::abs(poly.d_alpha[1].item<double>() - 0.75) < 1e-15);
}

TEST_CASE("bad path parameters are rejected at construction, naming the parameter", "[path][errors]") {
  auto msg = [](const std::string& name, const std::string& param, double v) {
    flowlab::Params p;
    p.set(param, v);
    try {
      path(name, p);
    } catch (const flowlab::ParamError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(msg("lipman_ot", "sigma_min", 1.0) == "path/lipman_ot: parameter 'sigma_min' must be in [0, 1), got 1");
  CHECK(msg("lipman_ot", "sigma_min", -0.1) == "path/lipman_ot: parameter 'sigma_min' must be in [0, 1), got -0.1");
  CHECK(msg("polynomial", "n", 0.0) == "path/polynomial: parameter 'n' must be > 0, got 0");
  CHECK(msg("polynomial", "n", -2.0) == "path/polynomial: parameter 'n' must be > 0, got -2");
  CHECK(msg("bridge", "sigma", -1.0) == "path/bridge: parameter 'sigma' must be >= 0, got -1");
  CHECK(msg("vp", "beta_max", 0.05) == "path/vp: parameter 'beta_max' must be > beta_min, got 0.05");
}
