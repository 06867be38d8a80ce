// solver/euler_maruyama (SiT's SDE sampler): a Gaussian-to-Gaussian problem with the exact velocity against the exact
// discrete-time moment recursion (tests/data/sde_moment_recursion.py) and the target, for every diffusion form; the
// euler solver bit for bit without diffusion; seeded noise; exact NFE; errors in full; a reproducible eval run.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "flowlab/path.hpp"
#include "flowlab/report.hpp"
#include "flowlab/solver.hpp"
#include "support.hpp"

using flowlab::Tensor;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

constexpr double kM = 1.5, kS = 0.3;  // the target N(kM, kS^2 I); tests/data/sde_moment_recursion.py has the same

// The exact velocity of the rectified path from N(0, I) to N(kM, kS^2 I): v = M + k_t (x - t M),
// k_t = (t S^2 - (1 - t)) / (t^2 S^2 + (1 - t)^2).
Tensor gaussian_velocity(const Tensor& x, const Tensor& t) {
  const double s = t.reshape(-1)[0].item<double>();
  const double k = (s * kS * kS - (1 - s)) / (s * s * kS * kS + (1 - s) * (1 - s));
  return (x - s * kM) * k + kM;
}

std::shared_ptr<flowlab::Solver> em(const flowlab::Params& p) {
  return registry().create<flowlab::Solver>("solver", "euler_maruyama", p);
}

std::shared_ptr<flowlab::Path> path(const std::string& name) {
  return registry().create<flowlab::Path>("path", name);
}

struct Row {
  std::string form, last_step;
  double norm = 0, last_step_size = 0, eps = 0, mean = 0, var = 0;
  int64_t steps = 0;
};

std::vector<Row> reference_rows() {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/sde_moment_recursion.csv");
  REQUIRE(in.good());
  std::vector<Row> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("form,", 0) == 0) continue;
    std::stringstream ss(line);
    std::vector<std::string> f;
    for (std::string c; std::getline(ss, c, ',');) f.push_back(c);
    REQUIRE(f.size() == 10);
    REQUIRE(std::stod(f[8]) == kM);
    REQUIRE(std::stod(f[9]) == kS * kS);
    rows.push_back({f[0], f[2], std::stod(f[1]), std::stod(f[3]), std::stod(f[4]), std::stod(f[6]), std::stod(f[7]),
                    std::stoll(f[5])});
  }
  return rows;
}

struct Moments {
  Tensor mean, cov;  // [D], [D, D]
};

Moments moments(const Tensor& x) {
  const Tensor mean = x.mean(0);
  const Tensor c = x - mean;
  return {mean, c.t().mm(c) / double(x.size(0) - 1)};
}

}  // namespace

TEST_CASE("euler_maruyama: Gaussian to Gaussian, every diffusion form matches the exact moment recursion and "
          "converges to the target",
          "[sde]") {
  const auto rectified = path("rectified");
  const int64_t n = 100000, d = 2;
  at::manual_seed(42);
  std::map<std::string, std::map<int64_t, double>> cov_error;  // form -> steps -> error of the covariance
  int checked = 0;
  for (const Row& row : reference_rows()) {
    INFO(fmt::format("{} norm {} last_step {} ({}) steps {}", row.form, row.norm, row.last_step, row.last_step_size,
                     row.steps));
    flowlab::Params p;
    p.set("steps", row.steps).set("diffusion", row.form).set("norm", row.norm).set("last_step", row.last_step);
    p.set("eps", row.eps);
    if (row.last_step != "none") p.set("last_step_size", row.last_step_size);
    flowlab::SampleOptions so;
    so.path = rectified.get();
    so.seed = 1000 + uint64_t(checked);
    const Tensor x0 = at::randn({n, d}, at::kDouble);
    const auto r = em(p)->sample(x0, gaussian_velocity, so);
    const Moments m = moments(r.x);
    // Monte Carlo standard errors of the sample mean, variance and covariance of n Gaussian draws.
    const double se_mean = std::sqrt(row.var / n), se_var = row.var * std::sqrt(2.0 / (n - 1)),
                 se_cov = row.var / std::sqrt(double(n));
    for (int64_t j = 0; j < d; ++j) {
      CHECK(std::abs(m.mean[j].item<double>() - row.mean) < 5 * se_mean);
      CHECK(std::abs(m.cov[j][j].item<double>() - row.var) < 5 * se_var);
      for (int64_t k = 0; k < j; ++k) CHECK(std::abs(m.cov[j][k].item<double>()) < 5 * se_cov);
    }
    // The mean is exact at every step count (the mean recursion is exact for an affine drift): within noise of M.
    CHECK((m.mean - kM).abs().max().item<double>() < 5 * se_mean);
    if (row.last_step == "none") {
      // The covariance's error against the target: the trace's (noise sd ~ S^2 / sqrt(n d / 2) = 2.8e-4 here) and
      // the largest off-diagonal entry's.
      const double trace = (at::trace(m.cov).item<double>() / d - kS * kS);
      cov_error[row.form][row.steps] = std::abs(trace);
      // The recursion's own error falls like 1 / steps; the tolerance with it.
      CHECK(std::abs(trace) < std::abs(row.var - kS * kS) + 5 * se_var / std::sqrt(double(d)));
    }
    ++checked;
  }
  CHECK(checked == 24);
  const std::vector<std::string> forms = {"constant", "SBDM", "sigma", "linear", "decreasing", "increasing-decreasing"};
  REQUIRE(cov_error.size() == forms.size());
  for (const auto& form : forms) {
    const auto& e = cov_error.at(form);
    INFO(fmt::format("{}: covariance error {} (25 steps), {} (100), {} (400)", form, e.at(25), e.at(100), e.at(400)));
    CHECK(e.at(25) > e.at(100));
    CHECK(e.at(100) > e.at(400));
    CHECK(e.at(400) < 2e-3);  // 2 % of S^2
  }
}

TEST_CASE("euler_maruyama without diffusion is the euler solver bit for bit", "[sde]") {
  const auto rectified = path("rectified");
  // A field that is not affine in x, so any difference in the arithmetic would show.
  const flowlab::VelocityField field = [](const Tensor& x, const Tensor& t) {
    return at::sin(x * 3) * flowlab::expand_like(t, x) + x.flip(1) - 0.5;
  };
  const Tensor x0 = at::randn({64, 3});
  flowlab::Params ep;
  ep.set("steps", int64_t(7));
  const auto euler = registry().create<flowlab::Solver>("solver", "euler", ep);
  // decreasing is left out: SiT's (norm cos(pi t) + 1)^2 / 4 is 1/4 at norm 0.
  for (const char* form : {"constant", "SBDM", "sigma", "linear", "increasing-decreasing"}) {
    INFO(form);
    flowlab::Params p;
    p.set("steps", int64_t(7)).set("diffusion", std::string(form)).set("norm", 0.0).set("last_step", std::string("none"));
    flowlab::SampleOptions so;
    so.path = rectified.get();
    so.seed = 3;
    so.return_trajectory = true;
    const auto a = em(p)->sample(x0, field, so);
    flowlab::SampleOptions plain;
    plain.return_trajectory = true;
    const auto b = euler->sample(x0, field, plain);
    CHECK(at::equal(a.x, b.x));
    CHECK(at::equal(a.trajectory, b.trajectory));
    CHECK(at::equal(a.times, b.times));
    CHECK(a.nfe == b.nfe);
    // On a custom grid too.
    so.grid = plain.grid = at::tensor({0.0, 0.05, 0.2, 0.5, 0.9, 1.0}, at::kDouble);
    CHECK(at::equal(em(p)->sample(x0, field, so).x, euler->sample(x0, field, plain).x));
  }
  // decreasing at norm 0 still diffuses (SiT's form): not the euler solver.
  flowlab::Params p;
  p.set("steps", int64_t(7)).set("diffusion", std::string("decreasing")).set("norm", 0.0).set("last_step", std::string("none"));
  flowlab::SampleOptions so;
  so.path = rectified.get();
  CHECK_FALSE(at::equal(em(p)->sample(x0, field, so).x, euler->sample(x0, field, flowlab::SampleOptions()).x));
}

TEST_CASE("euler_maruyama: the same seed gives the same samples bit for bit, another seed others", "[sde]") {
  const auto rectified = path("rectified");
  const Tensor x0 = at::randn({256, 2});
  flowlab::Params p;
  p.set("steps", int64_t(20));
  auto run = [&](std::optional<uint64_t> seed) {
    flowlab::SampleOptions so;
    so.path = rectified.get();
    so.seed = seed;
    return em(p)->sample(x0, gaussian_velocity, so).x;
  };
  // A seeded solve leaves torch's global generator alone.
  at::manual_seed(11);
  const Tensor a = run(5);
  const Tensor after_a = at::randn({4});
  at::manual_seed(11);
  const Tensor b = run(5);
  const Tensor after_b = at::randn({4});
  at::manual_seed(11);
  const Tensor expected_after = at::randn({4});
  CHECK(at::equal(a, b));
  CHECK(at::equal(after_a, expected_after));
  CHECK(at::equal(after_b, expected_after));
  const Tensor c = run(6);
  CHECK_FALSE(at::equal(a, c));
  CHECK((a - c).abs().max().item<double>() > 1e-2);
  // Unseeded: torch's default CPU generator, so reproducible under at::manual_seed.
  at::manual_seed(12);
  const Tensor u = run(std::nullopt);
  at::manual_seed(12);
  CHECK(at::equal(u, run(std::nullopt)));
  CHECK_FALSE(at::equal(u, a));
}

TEST_CASE("euler_maruyama: exact NFE, steps and times with every last step", "[sde]") {
  const auto rectified = path("rectified");
  const Tensor x0 = at::randn({16, 2});
  for (const char* last : {"none", "mean", "tweedie", "euler"}) {
    for (const char* form : {"sigma", "SBDM"}) {
      INFO(last << " " << form);
      const bool extra = std::string(last) != "none";
      flowlab::Params p;
      p.set("steps", int64_t(13)).set("diffusion", std::string(form)).set("last_step", std::string(last));
      p.set("last_step_size", 0.1);
      int64_t calls = 0;
      std::vector<double> seen;
      const flowlab::VelocityField counted = [&](const Tensor& x, const Tensor& t) {
        ++calls;
        seen.push_back(t.reshape(-1)[0].item<double>());
        return gaussian_velocity(x, t);
      };
      flowlab::SampleOptions so;
      so.path = rectified.get();
      so.seed = 1;
      so.return_trajectory = true;
      std::vector<double> reported;
      so.on_state = [&](double t, const Tensor&) { reported.push_back(t); };
      const auto r = em(p)->sample(x0, counted, so);
      CHECK(r.nfe == 13 + (extra ? 1 : 0));
      CHECK(calls == r.nfe);
      CHECK(r.accepted_steps == r.nfe);
      CHECK(r.trajectory.size(1) == r.nfe + 1);
      REQUIRE(r.times.size(0) == r.nfe + 1);
      const double start = std::string(form) == "SBDM" ? 1e-3 : 0.0, end = extra ? 0.9 : 1.0;
      CHECK(r.times[0].item<double>() == start);
      CHECK(r.times[13].item<double>() == end);
      CHECK(r.times[r.nfe].item<double>() == 1.0);
      // The field sees t in x's precision (float32 here).
      CHECK(seen.front() == double(float(start)));
      CHECK(seen.back() == double(float(extra ? 0.9 : r.times[12].item<double>())));
      CHECK(reported == std::vector<double>(r.times.data_ptr<double>(), r.times.data_ptr<double>() + r.nfe + 1));
      // A custom grid of 5 steps, mapped onto [start, end].
      so.grid = at::tensor({0.0, 0.1, 0.3, 0.6, 0.8, 1.0}, at::kDouble);
      const auto g = em(p)->sample(x0, gaussian_velocity, so);
      CHECK(g.nfe == 5 + (extra ? 1 : 0));
      CHECK(g.times[0].item<double>() == start);
      CHECK(g.times[5].item<double>() == end);
      // SampleOptions::steps overrides the parameter.
      flowlab::SampleOptions o;
      o.path = rectified.get();
      o.steps = 4;
      CHECK(em(p)->sample(x0, gaussian_velocity, o).nfe == 4 + (extra ? 1 : 0));
    }
  }
}

TEST_CASE("euler_maruyama: errors name the solver, the path or parameter, and the choices", "[sde][errors]") {
  const Tensor x0 = at::randn({4, 2});
  flowlab::Params p;
  p.set("steps", int64_t(4));
  flowlab::SampleOptions so;
  CHECK(message_of<flowlab::SolverError>([&] { em(p)->sample(x0, gaussian_velocity, so); }) ==
        "solver/euler_maruyama: needs the path the field was trained on (SampleOptions::path) to turn the velocity "
        "into a score; none was given");
  const auto bridge = path("bridge");
  so.path = bridge.get();
  so.path_name = "path/bridge";
  CHECK(message_of<flowlab::SolverError>([&] { em(p)->sample(x0, gaussian_velocity, so); }) ==
        "solver/euler_maruyama: path/bridge is not affine (x_t = alpha_t x1 + sigma_t x0): the score from the velocity "
        "needs its schedule");
  const auto rectified = path("rectified");
  so.path = rectified.get();
  so.path_name = "path/rectified";
  so.noise_name = "noise/matched";
  CHECK(message_of<flowlab::SolverError>([&] { em(p)->sample(x0, gaussian_velocity, so); }) ==
        "solver/euler_maruyama: the score from the velocity on path/rectified assumes x0 ~ N(0, I) (noise/gaussian), "
        "but x0 comes from noise/matched");
  so.noise_name = "noise/gaussian";
  CHECK(em(p)->sample(x0, gaussian_velocity, so).nfe == 5);

  flowlab::Params form = p;
  form.set("diffusion", std::string("cosine"));
  CHECK(message_of<flowlab::ParamError>([&] { em(form); }) ==
        "solver/euler_maruyama: parameter 'diffusion' must be one of constant, SBDM, sigma, linear, decreasing, "
        "increasing-decreasing, got 'cosine'");
  flowlab::Params norm = p;
  norm.set("norm", -1.0);
  CHECK(message_of<flowlab::ParamError>([&] { em(norm); }) ==
        "solver/euler_maruyama: parameter 'norm' must be finite and >= 0, got -1");
  flowlab::Params last = p;
  last.set("last_step", std::string("heun"));
  CHECK(message_of<flowlab::ParamError>([&] { em(last); }) ==
        "solver/euler_maruyama: parameter 'last_step' must be one of none, mean, tweedie, euler, got 'heun'");
  flowlab::Params size = p;
  size.set("last_step_size", 1.0);
  CHECK(message_of<flowlab::ParamError>([&] { em(size); }) ==
        "solver/euler_maruyama: parameter 'last_step_size' must be in (0, 1) with last_step mean, got 1");
  flowlab::Params steps = p;
  steps.set("steps", int64_t(0));
  CHECK(message_of<flowlab::ParamError>([&] { em(steps); }) ==
        "solver/euler_maruyama: parameter 'steps' must be > 0, got 0");
  // A last step that leaves no time for the steps.
  flowlab::SampleOptions late;
  late.path = rectified.get();
  late.t0 = 0.97;
  CHECK(message_of<flowlab::ParamError>([&] { em(p)->sample(x0, gaussian_velocity, late); }) ==
        "solver/euler_maruyama: parameter 'last_step_size' leaves no time for the steps: they would run from t = 0.97 "
        "to t = 0.96");
}

TEST_CASE("an eval run with euler_maruyama is reproducible: two runs of an experiment store the same samples",
          "[sde][eval]") {
  flowlab::test::ScratchDir s("flowlab_sde_eval");
  auto write = [&](const std::string& name) {
    const std::string file = s.file(name + ".yaml");
    std::ofstream(file) << "name: " << name << "\noutput: " << s.file(name + ".h5") << R"(
devices: [cpu]
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 5, batch_size: 32}
eval:
  samples: 200
  solvers: [{solver: euler_maruyama, steps: [6, 12]}, {solver: euler, steps: [6]}]
  metrics: [frechet]
)";
    return file;
  };
  auto run = [](const std::string& yaml) {
    return flowlab::test::run_command(std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " run " + yaml);
  };
  const auto a = run(write("first")), b = run(write("second"));
  INFO(a.out << a.err << b.out << b.err);
  REQUIRE(a.status == 0);
  REQUIRE(b.status == 0);
  const auto res = flowlab::read_results(s.file("first.h5"));
  const auto& t = res.trial("seed=0");
  REQUIRE(t.eval.size() == 3);
  CHECK(t.eval[0].label == "euler_maruyama:steps=6");
  CHECK(t.eval[0].nfe == 7);  // 6 steps and the last (mean) step
  CHECK(t.eval[1].nfe == 13);
  for (const char* row : {"000", "001", "002"}) {
    INFO(row);
    const std::string name = fmt::format("trials/seed=0/rows/{}/samples", row);
    const auto x = flowlab::read_array(s.file("first.h5"), name), y = flowlab::read_array(s.file("second.h5"), name);
    REQUIRE(x.shape == std::vector<int64_t>{200, 2});
    CHECK(x.values == y.values);
  }
  // The SDE rows are not the ODE's: the noise is there.
  CHECK(flowlab::read_array(s.file("first.h5"), "trials/seed=0/rows/000/samples").values !=
        flowlab::read_array(s.file("first.h5"), "trials/seed=0/rows/002/samples").values);
}
