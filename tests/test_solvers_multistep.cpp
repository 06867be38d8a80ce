// Multistep solvers (adams_bashforth, dpmpp_2m, unipc): exact NFE, Adams-Bashforth exact on polynomials on uniform
// and non-uniform grids, convergence orders by the slope of log error vs log h, dpmpp_2m and unipc against
// diffusers' schedulers (tests/data/make_multistep_reference.py), bad input, and an eval run through the engine.
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/errors.hpp"
#include "flowlab/multistep.hpp"
#include "flowlab/path.hpp"
#include "flowlab/time_grid.hpp"
#include "support.hpp"

using flowlab::test::max_error;
using flowlab::test::slope;

using flowlab::Tensor;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

std::shared_ptr<flowlab::Solver> solver(const std::string& name, int64_t steps, int64_t order = 0) {
  flowlab::Params p;
  p.set("steps", steps);
  if (order) p.set("order", order);
  return registry().create<flowlab::Solver>("solver", name, p);
}

std::shared_ptr<flowlab::Path> path(const std::string& name, const flowlab::Params& p = flowlab::Params()) {
  return registry().create<flowlab::Path>("path", name, p);
}

// A smooth non-uniform grid: t_i = g(i / n), g(u) = u (1 + u) / 2 (steps from 1/(2n) to 3/(2n)).
Tensor warped_grid(int64_t n) {
  std::vector<double> t(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i <= n; ++i) {
    const double u = double(i) / double(n);
    t[static_cast<size_t>(i)] = u * (1 + u) / 2;
  }
  return at::tensor(t, at::kDouble);
}

// Gaussian to Gaussian on the rectified path: x1 ~ N(mu, diag(s^2)); the exact marginal velocity and its flow map
// x(1) = mu + s x0 (as in make_multistep_reference.py).
const double kMu[2] = {1.5, -0.5}, kS[2] = {0.5, 2.0};
Tensor gaussian_velocity(const Tensor& x, const Tensor& t) {
  const Tensor mu = at::tensor({kMu[0], kMu[1]}, x.options()), s2 = at::tensor({kS[0] * kS[0], kS[1] * kS[1]}, x.options());
  const Tensor tt = t.to(x.scalar_type()).view({-1, 1});
  return mu + (tt * s2 - (1 - tt)) / (tt * tt * s2 + (1 - tt) * (1 - tt)) * (x - tt * mu);
}
// The flow map from time a to time b: x_b = b mu + sigma_b / sigma_a (x_a - a mu), sigma_t^2 = (1 - t)^2 + t^2 s^2.
Tensor gaussian_flow(const Tensor& xa, double a, double b) {
  const Tensor mu = at::tensor({kMu[0], kMu[1]}, xa.options()), s2 = at::tensor({kS[0] * kS[0], kS[1] * kS[1]}, xa.options());
  const Tensor sa = ((1 - a) * (1 - a) + a * a * s2).sqrt(), sb = ((1 - b) * (1 - b) + b * b * s2).sqrt();
  return b * mu + sb / sa * (xa - a * mu);
}
Tensor gaussian_x0() { return at::tensor({0.3, -1.2, 1.1, 0.4, -0.7, 2.0}, at::kDouble).reshape({3, 2}); }

// dx/dt = k x (linear) and a rotation, with their exact values at t = 1.
struct Problem {
  std::string name;
  flowlab::VelocityField field;
  Tensor x0, exact;
};
std::vector<Problem> problems() {
  const Tensor x0 = at::tensor({1.0, -0.5, 0.3, 0.8}, at::kDouble).reshape({2, 2});
  const auto rot = [](const Tensor& x) { return at::stack({-x.select(1, 1), x.select(1, 0)}, 1); };
  const double w = 2 * M_PI;
  return {{"linear", [](const Tensor& x, const Tensor&) { return 1.5 * x; }, x0, x0 * std::exp(1.5)},
          {"decay_t", [](const Tensor& x, const Tensor& t) { return -t.view({-1, 1}) * x; }, x0, x0 * std::exp(-0.5)},
          {"rotation", [=](const Tensor& x, const Tensor&) { return w * rot(x); }, x0,
           x0 * std::cos(w) + rot(x0) * std::sin(w)}};
}

}  // namespace

TEST_CASE("multistep solvers: exact NFE on uniform and custom grids", "[multistep][solver]") {
  const auto rect = path("rectified");
  for (int64_t n : {4, 7, 12}) {
    for (int64_t k : {2, 3, 4}) {
      flowlab::SampleOptions opt;
      opt.steps = n;
      const auto r = solver("adams_bashforth", 10, k)->sample(gaussian_x0(), gaussian_velocity, opt);
      CHECK(r.nfe == n + (k - 1) * (k - 1));
      CHECK(r.accepted_steps == n);
    }
    for (const std::string name : {"dpmpp_2m", "unipc"}) {
      flowlab::SampleOptions opt;
      opt.path = rect.get();
      opt.grid = warped_grid(n);
      std::vector<double> seen;
      opt.on_state = [&](double t, const Tensor&) { seen.push_back(t); };
      opt.return_trajectory = true;
      const auto r = solver(name, 3)->sample(gaussian_x0(), gaussian_velocity, opt);
      INFO(name << " " << n);
      CHECK(r.nfe == n);
      CHECK(r.accepted_steps == n);
      CHECK(seen.size() == size_t(n + 1));
      CHECK(r.trajectory.size(1) == n + 1);
      CHECK(max_error(r.times, warped_grid(n)) == 0);
      CHECK(max_error(r.trajectory.select(1, n), r.x) == 0);
    }
  }
}

TEST_CASE("Adams-Bashforth weights integrate the interpolant: the classic coefficients on a uniform grid", "[multistep]") {
  const std::vector<std::vector<double>> classic = {
      {3.0 / 2, -1.0 / 2}, {23.0 / 12, -16.0 / 12, 5.0 / 12}, {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
  for (const auto& c : classic) {
    std::vector<double> nodes;
    for (size_t j = 0; j < c.size(); ++j) nodes.push_back(0.3 - 0.1 * double(j));
    const auto w = flowlab::lagrange_integral_weights(nodes, 0.3, 0.4);
    for (size_t j = 0; j < c.size(); ++j) CHECK(std::abs(w[j] - 0.1 * c[j]) <= 1e-15);
  }
  // Variable steps, two nodes t_n = 0, t_{n-1} = -r h: w = h (1 + h / (2 r h), -h / (2 r h)), here r = 1/2, h = 1.
  const auto w = flowlab::lagrange_integral_weights({0.0, -0.5}, 0.0, 1.0);
  CHECK(std::abs(w[0] - 2.0) <= 1e-15);
  CHECK(std::abs(w[1] + 1.0) <= 1e-15);
}

TEST_CASE("Adams-Bashforth of order k is exact on a degree-k polynomial solution, and not on degree k + 1",
          "[multistep][solver]") {
  // x_j(t) = sum_m c_jm t^m with v = x'(t), a function of t only, so the Runge-Kutta start of order k is exact too.
  const std::vector<std::vector<double>> c = {{0.5, -1.0, 2.0, 0.7, -1.3, 0.9}, {-0.2, 0.4, -3.0, 1.1, 0.6, -0.8}};
  const auto field_of_degree = [&](int64_t deg) {
    return [&c, deg](const Tensor& x, const Tensor& t) {
      std::vector<Tensor> cols;
      for (const auto& cj : c) {
        Tensor d = at::zeros_like(t);
        for (int64_t m = 1; m <= deg; ++m) d = d + double(m) * cj[size_t(m)] * t.pow(double(m - 1));
        cols.push_back(d.to(x.scalar_type()));
      }
      return at::stack(cols, 1);
    };
  };
  const auto value_at = [&](int64_t deg, double t) {
    std::vector<double> v;
    for (const auto& cj : c) {
      double s = 0;
      for (int64_t m = 0; m <= deg; ++m) s += cj[size_t(m)] * std::pow(t, double(m));
      v.push_back(s);
    }
    return at::tensor(v, at::kDouble).reshape({1, 2});
  };
  const Tensor uneven = at::tensor({0.0, 0.07, 0.25, 0.31, 0.55, 0.6, 0.82, 1.0}, at::kDouble);
  for (int64_t k : {2, 3, 4}) {
    for (const bool uniform : {true, false}) {
      flowlab::SampleOptions opt;
      if (uniform) opt.steps = 9; else opt.grid = uneven;
      const auto s = solver("adams_bashforth", 10, k);
      INFO("order " << k << (uniform ? " uniform" : " uneven"));
      const auto exact = s->sample(value_at(k, 0), field_of_degree(k), opt);
      CHECK(max_error(exact.x, value_at(k, 1)) <= 1e-13);
      const auto inexact = s->sample(value_at(k + 1, 0), field_of_degree(k + 1), opt);
      CHECK(max_error(inexact.x, value_at(k + 1, 1)) > 1e-6);
    }
  }
}

TEST_CASE("multistep solvers converge at their order on uniform and non-uniform grids", "[multistep][solver]") {
  // From 64 steps: Adams-Bashforth 3 on decay_t's warped grid is pre-asymptotic below (slope 3.4 at 16-128 steps).
  const std::vector<int64_t> ns = {64, 128, 256, 512};
  for (int64_t k : {2, 3, 4})
    for (const auto& p : problems())
      for (const bool uniform : {true, false}) {
        std::vector<double> hs, errs;
        for (int64_t n : ns) {
          flowlab::SampleOptions opt;
          if (uniform) opt.steps = n; else opt.grid = warped_grid(n);
          hs.push_back(1.0 / double(n));
          errs.push_back(max_error(solver("adams_bashforth", 10, k)->sample(p.x0, p.field, opt).x, p.exact));
        }
        const double order = slope(hs, errs);
        UNSCOPED_INFO("adams_bashforth order " << k << " on " << p.name << (uniform ? " uniform" : " warped") << ": " << order);
        CHECK(std::abs(order - double(k)) <= 0.25);
      }
  // The data-prediction methods on the Gaussian field of the rectified path, on [0.05, 0.95]: their order is in the
  // step of lambda = log(alpha / sigma), which is infinite at t = 0 and t = 1. On [0, 1] the first step (Euler from
  // lambda = -inf) and the last (to sigma = 0) are first order in lambda, and dpmpp_2m's slope only creeps up to 2
  // (1.73 at 16-128 steps, 1.85 at 1024-2048 on the uniform grid: the same numbers in a NumPy transcription of
  // diffusers' update), while unipc stalls near 5e-6 from 1024 steps on (diffusers' schedule shift of 1e-6 at
  // t = 0); the reference test below pins both to diffusers step for step. Inside, both reach 2 by 256 steps.
  const auto rect = path("rectified");
  const std::vector<int64_t> fine = {256, 512, 1024, 2048};
  const double a = 0.05, b = 0.95;
  for (const std::string name : {"dpmpp_2m", "unipc"})
    for (const bool uniform : {true, false}) {
      std::vector<double> hs, errs;
      for (int64_t n : fine) {
        flowlab::SampleOptions opt;
        opt.path = rect.get();
        opt.grid = a + (b - a) * (uniform ? at::linspace(0.0, 1.0, n + 1, at::kDouble) : warped_grid(n));
        hs.push_back(1.0 / double(n));
        errs.push_back(max_error(solver(name, 10)->sample(gaussian_x0(), gaussian_velocity, opt).x,
                                 gaussian_flow(gaussian_x0(), a, b)));
      }
      const double order = slope(hs, errs);
      UNSCOPED_INFO(name << (uniform ? " uniform" : " warped") << ": order " << order << ", errors " << errs[0] << " .. " << errs[3]);
      CHECK(std::abs(order - 2.0) <= 0.15);
    }
}

TEST_CASE("dpmpp_2m and unipc equal diffusers' schedulers step for step", "[multistep][solver][reference]") {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/multistep_reference.csv");
  REQUIRE(in.good());
  const auto rect = path("rectified");
  const auto numbers = [](const std::string& s) {
    std::vector<double> v;
    std::stringstream ss(s);
    for (double d; ss >> d;) v.push_back(d);
    return v;
  };
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("method,", 0) == 0) continue;
    std::stringstream ss(line);
    std::string method, grid, steps, times, x0, x1;
    std::getline(ss, method, ','), std::getline(ss, grid, ','), std::getline(ss, steps, ',');
    std::getline(ss, times, ','), std::getline(ss, x0, ','), std::getline(ss, x1, ',');
    flowlab::SampleOptions opt;
    opt.path = rect.get();
    opt.grid = at::tensor(numbers(times), at::kDouble);
    const Tensor start = at::tensor(numbers(x0), at::kDouble).reshape({-1, 2});
    const auto r = solver(method, 2)->sample(start, gaussian_velocity, opt);
    INFO(method << " on " << grid << " with " << steps << " steps");
    CHECK(r.nfe == std::stoll(steps));
    CHECK(max_error(r.x, at::tensor(numbers(x1), at::kDouble).reshape({-1, 2})) <= 1e-10);
    ++cases;
  }
  CHECK(cases == 10);
}

TEST_CASE("multistep solvers refuse bad input naming the solver, the parameter and the minimum", "[multistep][errors]") {
  using flowlab::ParamError;
  using flowlab::SolverError;
  CHECK(message_of<ParamError>([] { solver("adams_bashforth", 10, 5); }) ==
        "solver/adams_bashforth: parameter 'order' must be 2, 3 or 4, got 5");
  CHECK(message_of<ParamError>([] { solver("adams_bashforth", 3, 4); }) ==
        "solver/adams_bashforth: parameter 'steps' must be >= 4 (the method's order), got 3");
  CHECK(message_of<ParamError>([] { solver("unipc", 1); }) ==
        "solver/unipc: parameter 'steps' must be >= 2 (the method's order), got 1");
  CHECK(message_of<ParamError>([] { solver("dpmpp_2m", 1); }) ==
        "solver/dpmpp_2m: parameter 'steps' must be >= 2 (the method's order), got 1");
  const auto rect = path("rectified");
  flowlab::SampleOptions opt;
  opt.path = rect.get();
  opt.steps = 1;
  CHECK(message_of<ParamError>([&] { solver("dpmpp_2m", 4)->sample(gaussian_x0(), gaussian_velocity, opt); }) ==
        "solver/dpmpp_2m: parameter 'steps' must be >= 2 (the method's order), got 1");
  opt.steps.reset();
  opt.grid = at::tensor({0.0, 1.0}, at::kDouble);
  CHECK(message_of<ParamError>([&] { solver("unipc", 4)->sample(gaussian_x0(), gaussian_velocity, opt); }) ==
        "solver/unipc: parameter 'grid' must have at least 2 steps (3 times) for this method's order, got 1");
  opt.grid = at::tensor({0.0, 0.5, 0.4, 1.0}, at::kDouble);
  CHECK(message_of<ParamError>([&] { solver("adams_bashforth", 4, 2)->sample(gaussian_x0(), gaussian_velocity, opt); }) ==
        "solver/adams_bashforth: parameter 'grid' must increase strictly, but grid[2] = 0.4 <= grid[1] = 0.5");
  flowlab::SampleOptions none;
  CHECK(message_of<SolverError>([&] { solver("dpmpp_2m", 4)->sample(gaussian_x0(), gaussian_velocity, none); }) ==
        "solver/dpmpp_2m: needs the path the field was trained on (SampleOptions::path) to turn velocities into x1 "
        "predictions, and none was given");
  const auto bridge = path("bridge");
  flowlab::SampleOptions stochastic;
  stochastic.path = bridge.get();
  CHECK(message_of<SolverError>([&] { solver("unipc", 4)->sample(gaussian_x0(), gaussian_velocity, stochastic); }) ==
        "solver/unipc: the path is not affine (x_t = alpha_t x1 + sigma_t x0), and x1 predictions need its schedule: "
        "use a Runge-Kutta solver");
  flowlab::Params half;
  half.set("n", 0.5);
  const auto poly = path("polynomial", half);
  flowlab::SampleOptions open;
  open.path = poly.get();
  CHECK(message_of<SolverError>([&] { solver("dpmpp_2m", 4)->sample(gaussian_x0(), gaussian_velocity, open); }) ==
        "solver/dpmpp_2m: the path's schedule is not usable at t = 0 (alpha = 0, sigma = 1, d_alpha = inf, d_sigma = "
        "-inf): start and end the grid inside the path's domain");
  // Inside the domain the same path works.
  open.grid = at::tensor({0.01, 0.3, 0.6, 1.0}, at::kDouble);
  CHECK(solver("dpmpp_2m", 4)->sample(gaussian_x0(), gaussian_velocity, open).nfe == 3);
}

TEST_CASE("an eval run {solver: dpmpp_2m, steps: [4, 8], grid: {name: edm}} runs through the engine", "[multistep][eval]") {
  const auto file = flowlab::test::scratch_dir("flowlab_multistep_") / "edm.yaml";
  std::ofstream(file) << R"(name: ms
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 5, batch_size: 32}
eval:
  samples: 64
  solvers: [{solver: dpmpp_2m, steps: [4, 8], grid: {name: edm}}, {solver: unipc, steps: [4]},
            {solver: adams_bashforth, steps: [5], params: {order: 4}}]
  metrics: [frechet]
)";
  const auto ex = flowlab::load_experiment(file.string(), registry());
  const auto r = flowlab::run_trial(ex.trials[0], registry(), "cpu");
  CHECK(r.status == "completed");
  REQUIRE(r.eval.size() == 4);
  const auto rect = path("rectified");
  const std::vector<int64_t> nfe = {4, 8, 4, 5 + 9};
  for (size_t i = 0; i < r.eval.size(); ++i) {
    INFO(r.eval[i].label << ": " << r.eval[i].error);
    CHECK(r.eval[i].error.empty());
    CHECK(r.eval[i].nfe == nfe[i]);
    CHECK(std::isfinite(r.eval[i].metrics.at(0)));
  }
  flowlab::Params edm;
  CHECK(r.eval[0].times == registry().create<flowlab::TimeGrid>("time_grid", "edm", edm)->times(4, rect.get()));
  // A step count below the order is refused at load, located at the steps.
  const auto bad = flowlab::test::scratch_dir("flowlab_multistep_") / "bad.yaml";
  std::ofstream(bad) << R"(name: ms
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
eval:
  solvers: [{solver: unipc, steps: [1, 4]}]
)";
  CHECK(message_of<flowlab::Error>([&] { flowlab::load_experiment(bad.string(), registry()); }) ==
        bad.string() + ":5:37: eval.solvers[0].steps: solver/unipc: parameter 'steps' must be >= 2 (the method's order), got 1");
}

