// Solvers: convergence orders on analytic ODEs, exact NFE, dopri5 against SciPy's RK45, NaN/Inf handling,
// trajectories and custom grids, bad parameters, and a contract test over every solver plugin.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/generators/catch_generators_range.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "flowlab/path.hpp"
#include "flowlab/registry.hpp"
#include "support.hpp"

using flowlab::test::max_error;
using flowlab::test::slope;
#include "flowlab/solver.hpp"

using Catch::Matchers::StartsWith;
using flowlab::Tensor;

using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {


std::shared_ptr<flowlab::Solver> solver(const std::string& name, const flowlab::Params& p = flowlab::Params()) {
  return registry().create<flowlab::Solver>("solver", name, p);
}

constexpr double kA = 1.5;          // linear problem rate
constexpr double kW = 2 * M_PI;     // rotation speed

/// An analytic ODE on x [B, D] with its exact solution at t = 1.
struct Problem {
  std::string name;
  flowlab::VelocityField field;
  Tensor x0;
  std::function<Tensor(const Tensor&)> exact;
};

Tensor rot(const Tensor& x) { return at::stack({-x.select(1, 1), x.select(1, 0)}, 1); }

std::vector<Problem> problems() {
  const auto d = at::TensorOptions().dtype(at::kDouble);
  return {
      {"linear", [](const Tensor& x, const Tensor&) { return kA * x; }, at::tensor({1.0, -0.5}, d).reshape({1, 2}),
       [](const Tensor& x0) { return x0 * std::exp(kA); }},
      {"decay_t", [](const Tensor& x, const Tensor& t) { return -flowlab::expand_like(t, x) * x; },
       at::tensor({2.0, 0.3, -1.0}, d).reshape({1, 3}), [](const Tensor& x0) { return x0 * std::exp(-0.5); }},
      {"rotation", [](const Tensor& x, const Tensor&) { return kW * rot(x); },
       at::tensor({1.0, 0.0, 0.5, 0.5, -0.2, 0.9}, d).reshape({3, 2}),
       [](const Tensor& x0) { return x0 * std::cos(kW) + rot(x0) * std::sin(kW); }},
  };
}


}  // namespace

TEST_CASE("fixed-step solvers converge at their order with exact NFE", "[solver]") {
  struct Expect {
    const char* name;
    double order, tol;
    int64_t nfe_per_step;
    std::vector<int64_t> steps;
  };
  const std::vector<Expect> expects = {{"euler", 1, 0.15, 1, {64, 128, 256, 512}},
                                       {"midpoint", 2, 0.2, 2, {32, 64, 128, 256}},
                                       {"heun", 2, 0.2, 2, {32, 64, 128, 256}},
                                       {"rk4", 4, 0.3, 4, {8, 16, 32, 64}}};
  for (const auto& e : expects) {
    auto s = solver(e.name);
    for (const auto& p : problems()) {
      std::vector<double> hs, errs;
      for (int64_t n : e.steps) {
        flowlab::SampleOptions opt;
        opt.steps = n;
        const auto r = s->sample(p.x0, p.field, opt);
        CHECK(r.nfe == e.nfe_per_step * n);
        CHECK(r.accepted_steps == n);
        hs.push_back(1.0 / n);
        errs.push_back(max_error(r.x, p.exact(p.x0)));
      }
      const double order = slope(hs, errs);
      INFO(e.name << " on " << p.name << ": measured order " << order);
      UNSCOPED_INFO(e.name << " on " << p.name << ": order " << order);
      CHECK(std::abs(order - e.order) <= e.tol);
    }
  }
}

TEST_CASE("dopri5 meets its tolerance and its NFE follows the FSAL count", "[solver][dopri5]") {
  for (double rtol : {1e-3, 1e-6, 1e-9}) {
    flowlab::Params p;
    p.set("rtol", rtol).set("atol", rtol * 1e-3);
    auto s = solver("dopri5", p);
    for (const auto& pr : problems()) {
      const auto r = s->sample(pr.x0, pr.field);
      const Tensor exact = pr.exact(pr.x0);
      INFO(pr.name << " rtol " << rtol);
      CHECK(max_error(r.x, exact) <= 10 * rtol * exact.abs().max().item<double>());
      // 1 NFE for f(t0), 1 for Hairer's probe, 6 per attempted step (the 7th stage is the next step's first).
      CHECK(r.nfe == 2 + 6 * (r.accepted_steps + r.rejected_steps));
    }
  }
}

TEST_CASE("dopri5 matches SciPy's RK45 step for step", "[solver][dopri5]") {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/dopri5_reference.csv");
  REQUIRE(in.good());
  std::string line;
  int cases = 0;
  std::map<std::string, Problem> by_name;
  for (auto& p : problems()) by_name[p.name] = p;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("problem,", 0) == 0) continue;
    std::stringstream ss(line);
    std::string name, rtol, atol, h0, nfev, nacc, ys;
    std::getline(ss, name, ','), std::getline(ss, rtol, ','), std::getline(ss, atol, ','), std::getline(ss, h0, ',');
    std::getline(ss, nfev, ','), std::getline(ss, nacc, ','), std::getline(ss, ys, ',');
    std::vector<double> y;
    std::stringstream yss(ys);
    for (double v; yss >> v;) y.push_back(v);
    const Problem& pr = by_name.at(name);
    flowlab::Params p;
    p.set("rtol", std::stod(rtol)).set("atol", std::stod(atol)).set("first_step", std::stod(h0));
    const auto r = solver("dopri5", p)->sample(pr.x0, pr.field);
    INFO(line);
    CHECK(r.nfe == std::stoll(nfev));
    CHECK(r.accepted_steps == std::stoll(nacc));
    const Tensor ref = at::tensor(y, at::kDouble).reshape(pr.x0.sizes());
    CHECK(max_error(r.x, ref) <= 1e-12 * (1 + ref.abs().max().item<double>()));
    ++cases;
  }
  CHECK(cases == 18);
}

TEST_CASE("a NaN or Inf from the field stops the solver, naming the step and t", "[solver][errors]") {
  const Tensor x0 = at::ones({4, 2}, at::kDouble);
  auto nan_after_half = [](const Tensor& x, const Tensor& t) {
    return t[0].item<double>() >= 0.5 - 1e-12 ? at::full_like(x, NAN) : x;
  };
  CHECK(message_of<flowlab::SolverError>([&] { solver("euler")->sample(x0, nan_after_half); }) ==
        "solver/euler: velocity field returned NaN or Inf at step 5 (t = 0.5), evaluation 6");
  auto inf_field = [](const Tensor& x, const Tensor& t) {
    return t[0].item<double>() > 0.3 ? at::full_like(x, INFINITY) : -x;
  };
  CHECK_THAT(message_of<flowlab::SolverError>([&] { solver("dopri5")->sample(x0, inf_field); }),
             StartsWith("solver/dopri5: velocity field returned NaN or Inf at step "));
  CHECK_THAT(message_of<flowlab::SolverError>([&] { solver("rk4")->sample(x0, inf_field); }),
             StartsWith("solver/rk4: velocity field returned NaN or Inf at step 3 (t = 0.35"));
}

TEST_CASE("bad solver parameters are rejected at construction, naming the parameter", "[solver][errors]") {
  flowlab::Params zero;
  zero.set("steps", std::int64_t{0});
  for (const char* name : {"euler", "midpoint", "heun", "rk4"})
    CHECK(message_of<flowlab::ParamError>([&] { solver(name, zero); }) ==
          std::string("solver/") + name + ": parameter 'steps' must be > 0, got 0");
  flowlab::Params rtol;
  rtol.set("rtol", 0.0);
  CHECK(message_of<flowlab::ParamError>([&] { solver("dopri5", rtol); }) ==
        "solver/dopri5: parameter 'rtol' must be > 0, got 0");
  flowlab::Params neg;
  neg.set("max_steps", std::int64_t{-3});
  CHECK(message_of<flowlab::ParamError>([&] { solver("dopri5", neg); }) ==
        "solver/dopri5: parameter 'max_steps' must be > 0, got -3");
  flowlab::SampleOptions opt;
  opt.steps = -1;
  CHECK(message_of<flowlab::ParamError>([&] {
          solver("rk4")->sample(at::ones({1, 1}), [](const Tensor& x, const Tensor&) { return x; }, opt);
        }) == "solver/rk4: parameter 'steps' must be > 0, got -1");
}

TEST_CASE("dopri5 gives up after max_steps with a clear message", "[solver][errors]") {
  flowlab::Params p;
  p.set("max_steps", std::int64_t{3}).set("rtol", 1e-10).set("atol", 1e-12);
  const auto all = problems();
  const auto& pr = all[2];
  CHECK_THAT(message_of<flowlab::SolverError>([&] { solver("dopri5", p)->sample(pr.x0, pr.field); }),
             StartsWith("solver/dopri5: exceeded max_steps = 3 at step "));
}

TEST_CASE("trajectories are [B, T+1, ...] with times [T+1]; steps and grids can be set per call", "[solver]") {
  const Tensor x0 = at::randn({5, 3, 2}, at::kDouble);
  auto field = [](const Tensor& x, const Tensor&) { return -x; };
  flowlab::SampleOptions opt;
  opt.return_trajectory = true;
  opt.steps = 7;
  auto r = solver("heun")->sample(x0, field, opt);
  CHECK(r.trajectory.sizes() == at::IntArrayRef({5, 8, 3, 2}));
  CHECK(r.times.sizes() == at::IntArrayRef({8}));
  CHECK(r.times[0].item<double>() == 0.0);
  CHECK(r.times[7].item<double>() == 1.0);
  CHECK(at::equal(r.trajectory.select(1, 0), x0));
  CHECK(at::equal(r.trajectory.select(1, 7), r.x));
  CHECK(r.nfe == 14);

  flowlab::SampleOptions grid;
  grid.grid = at::tensor({0.0, 0.1, 0.5, 0.55, 1.0}, at::kDouble);
  grid.return_trajectory = true;
  r = solver("euler")->sample(x0, field, grid);
  CHECK(r.nfe == 4);
  CHECK(at::equal(r.times, grid.grid));
  // Euler on x' = -x over steps h_i multiplies by prod(1 - h_i).
  CHECK(max_error(r.x, x0 * (0.9 * 0.6 * 0.95 * 0.55)) < 1e-15);

  flowlab::SampleOptions bad;
  bad.grid = at::tensor({0.0, 0.5, 0.5, 1.0}, at::kDouble);
  CHECK(message_of<flowlab::ParamError>([&] { solver("rk4")->sample(x0, field, bad); }) ==
        "solver/rk4: parameter 'grid' must increase strictly, but grid[2] = 0.5 <= grid[1] = 0.5");

  flowlab::SampleOptions traj;
  traj.return_trajectory = true;
  r = solver("dopri5")->sample(x0, field, traj);
  CHECK(r.trajectory.size(1) == r.accepted_steps + 1);
  CHECK(r.times[-1].item<double>() == 1.0);
}

TEST_CASE("contract: every solver plugin integrates a zero field exactly and x' = x accurately", "[solver][contract]") {
  std::vector<std::string> names;
  // ODE solvers only: a stochastic one (euler_maruyama, tests/test_sde.cpp) adds noise and needs the path's schedule.
  for (const auto& info : registry().list("solver"))
    if (!solver(info.name)->stochastic()) names.push_back(info.name);
  REQUIRE(names.size() >= 5);
  const std::string name = GENERATE_COPY(from_range(names));
  INFO("solver/" << name);
  auto s = solver(name);
  const Tensor x0 = at::randn({8, 2}, at::kDouble);
  // The trained path, for the data-prediction solvers (dpmpp_2m, unipc), which step x through x1 predictions:
  // for a zero field their coefficients sum to 1 only up to rounding.
  const auto rect = registry().create<flowlab::Path>("path", "rectified");
  const bool data_prediction = name == "dpmpp_2m" || name == "unipc";
  flowlab::SampleOptions opt;
  opt.path = rect.get();
  opt.return_trajectory = true;
  // For few-step solvers (few_step), the fields' exact average velocities over [t, t + d]: 0, and x (e^d - 1) / d.
  opt.step_field = [](const Tensor& x, const Tensor&, const Tensor&) { return at::zeros_like(x); };
  auto r = s->sample(x0, [](const Tensor& x, const Tensor&) { return at::zeros_like(x); }, opt);
  if (data_prediction)
    CHECK(max_error(r.x, x0) <= 1e-14 * x0.abs().max().item<double>());
  else
    CHECK(at::equal(r.x, x0));
  CHECK(r.nfe > 0);
  CHECK(r.trajectory.size(1) == r.times.size(0));
  CHECK((r.times.slice(0, 1) > r.times.slice(0, 0, -1)).all().item<bool>());
  flowlab::SampleOptions plain;
  plain.path = rect.get();
  plain.step_field = [](const Tensor& x, const Tensor&, const Tensor& d) {
    return x * (at::expm1(d) / d).reshape({-1, 1});
  };
  r = s->sample(x0, [](const Tensor& x, const Tensor&) { return x; }, plain);
  CHECK(max_error(r.x, x0 * std::exp(1.0)) < 0.15 * x0.abs().max().item<double>());
}
