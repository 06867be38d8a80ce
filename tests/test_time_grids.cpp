// Time grids: every plugin monotone and exact at the ends, each grid equal to its closed form, the noise-level map
// through a path's schedule, list's refusals, and a grid reaching the solver (its times are the solver's states').
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cmath>

#include "flowlab/errors.hpp"
#include "flowlab/path.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/time_grid.hpp"
#include "flowlab/time_sampler.hpp"
#include "flowlab/tune_grid.hpp"
#include "support.hpp"

using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

std::shared_ptr<flowlab::TimeGrid> grid(const std::string& name, const flowlab::Params& p = flowlab::Params()) {
  return registry().create<flowlab::TimeGrid>("time_grid", name, p);
}

std::shared_ptr<flowlab::Path> path(const std::string& name) {
  return registry().create<flowlab::Path>("path", name, flowlab::Params());
}

// |a - b| within `tol` at every index, with the index in the message.
void check_times(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("index " << i << ": " << got[i] << " vs " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol);
  }
}

}  // namespace

TEST_CASE("every grid runs from 0 to 1 exactly and increases strictly, on every affine path", "[grid]") {
  const auto infos = registry().list("time_grid");
  std::vector<std::string> names;
  for (const auto& i : infos) names.push_back(i.name);
  CHECK(names == std::vector<std::string>{"cosine", "edm", "list", "logit_normal", "shift", "uniform"});
  for (const std::string p : {"rectified", "cosine", "lipman_ot", "vp", "vp_linear", "polynomial"}) {
    const auto pa = path(p);
    for (const auto& name : names) {
      if (name == "list") continue;
      const auto g = grid(name);
      for (int64_t n : {1, 2, 3, 4, 8, 16, 100}) {
        INFO(name << " on path/" << p << ", N = " << n);
        const std::vector<double> t = g->times(n, pa.get());  // times() itself throws on a violation
        REQUIRE(t.size() == size_t(n + 1));
        CHECK(t.front() == 0.0);
        CHECK(t.back() == 1.0);
        for (size_t i = 1; i < t.size(); ++i) CHECK(t[i] > t[i - 1]);
      }
    }
  }
}

TEST_CASE("each grid equals its closed form", "[grid]") {
  const auto rect = path("rectified");
  const auto cos_path = path("cosine");
  const int64_t n = 8;
  std::vector<double> want(n + 1);

  for (int64_t i = 0; i <= n; ++i) want[size_t(i)] = double(i) / n;
  check_times(grid("uniform")->times(n, nullptr), want, 0.0);

  for (int64_t i = 0; i <= n; ++i) want[size_t(i)] = 0.5 * (1 - std::cos(M_PI * i / n));
  want.back() = 1.0;
  check_times(grid("cosine")->times(n, nullptr), want, 1e-15);

  // EDM: sigma_i = (80^(1/7) + i/(N-1) (0.002^(1/7) - 80^(1/7)))^7; t = 1 / (1 + sigma) on the rectified path,
  // t = (2/pi) atan(1/sigma) on the cosine path (sigma_t / alpha_t = cot(pi t / 2)).
  flowlab::Params edm;
  edm.set("rho", 5.0);
  std::vector<double> want_cos(n + 1);
  for (int64_t i = 1; i < n; ++i) {
    const double s = std::pow(std::pow(80.0, 1 / 5.0) + double(i) / (n - 1) * (std::pow(0.002, 1 / 5.0) - std::pow(80.0, 1 / 5.0)), 5.0);
    want[size_t(i)] = 1 / (1 + s);
    want_cos[size_t(i)] = 2 / M_PI * std::atan(1 / s);
  }
  want.front() = want_cos.front() = 0.0;
  want.back() = want_cos.back() = 1.0;
  check_times(grid("edm", edm)->times(n, rect.get()), want, 1e-14);
  check_times(grid("edm", edm)->times(n, cos_path.get()), want_cos, 1e-14);
  CHECK(grid("edm")->times(1, rect.get()) == std::vector<double>{0.0, 1.0});

  // SD3's shift on the rectified path: t = u / (u + s (1 - u)).
  flowlab::Params shift;
  shift.set("s", 3.0);
  for (int64_t i = 0; i <= n; ++i) {
    const double u = double(i) / n;
    want[size_t(i)] = u / (u + 3 * (1 - u));
  }
  check_times(grid("shift", shift)->times(n, rect.get()), want, 1e-14);
  shift.set("s", 1.0);  // no shift: the uniform grid
  for (int64_t i = 0; i <= n; ++i) want[size_t(i)] = double(i) / n;
  check_times(grid("shift", shift)->times(n, rect.get()), want, 1e-14);

  // logit_normal: each step holds 1/N of time_sampler/logit_normal's mass (its analytic CDF).
  flowlab::Params ln;
  ln.set("m", 0.3).set("s", 1.2);
  const auto sampler = registry().create<flowlab::TimeSampler>("time_sampler", "logit_normal", ln);
  const std::vector<double> t = grid("logit_normal", ln)->times(n, nullptr);
  for (int64_t i = 0; i <= n; ++i) {
    INFO("logit_normal index " << i);
    CHECK(std::abs(sampler->cdf(t[size_t(i)]) - double(i) / n) <= 1e-12);
  }

  flowlab::Params list;
  list.set("times", std::vector<double>{0, 0.1, 0.35, 0.9, 1});
  CHECK(grid("list", list)->times(4, nullptr) == std::vector<double>{0, 0.1, 0.35, 0.9, 1});
}

TEST_CASE("the noise-level map inverts the path's sigma_t / alpha_t", "[grid]") {
  for (const std::string p : {"rectified", "cosine", "vp", "polynomial"}) {
    const auto pa = path(p);
    for (double t : {0.01, 0.2, 0.5, 0.77, 0.999}) {
      const double r = flowlab::noise_to_signal(pa.get(), t, "test");
      INFO(p << " t = " << t << " ratio " << r);
      CHECK(std::abs(flowlab::time_at_noise_to_signal(pa.get(), r, "test") - t) <= 1e-12);
    }
    CHECK(flowlab::time_at_noise_to_signal(pa.get(), 0.0, "test") == 1.0);
    CHECK(flowlab::time_at_noise_to_signal(pa.get(), INFINITY, "test") == 0.0);
  }
}

TEST_CASE("grids refuse bad input with the plugin, the parameter and the offending index", "[grid][errors]") {
  flowlab::Params list;
  list.set("times", std::vector<double>{0, 0.5, 0.3, 1});
  CHECK(message_of<flowlab::ParamError>([&] { grid("list", list); }) ==
        "time_grid/list: parameter 'times' times[2] = 0.3 is not above times[1] = 0.5: the times must increase strictly");
  list.set("times", std::vector<double>{0, 1.5, 1});
  CHECK(message_of<flowlab::ParamError>([&] { grid("list", list); }) ==
        "time_grid/list: parameter 'times' times[1] = 1.5 is outside [0, 1]");
  list.set("times", std::vector<double>{0.1, 0.5, 1});
  CHECK(message_of<flowlab::ParamError>([&] { grid("list", list); }) ==
        "time_grid/list: parameter 'times' times[0] = 0.1 must be 0 (the noise)");
  list.set("times", std::vector<double>{0, 0.5, 0.9});
  CHECK(message_of<flowlab::ParamError>([&] { grid("list", list); }) ==
        "time_grid/list: parameter 'times' times[2] = 0.9 must be 1 (the data)");
  CHECK(message_of<flowlab::ParamError>([&] { grid("list"); }) ==
        "time_grid/list: parameter 'times' needs at least 2 times (0 and 1), got 0");
  list.set("times", std::vector<double>{0, 0.5, 1});
  CHECK(message_of<flowlab::ParamError>([&] { grid("list", list)->times(3, nullptr); }) ==
        "time_grid/list: parameter 'times' has 3 times, which is 2 steps, but the run asks for 3 steps");
  CHECK(message_of<flowlab::ParamError>([&] { grid("uniform")->times(0, nullptr); }) ==
        "time_grid/uniform: parameter 'steps' must be >= 1, got 0");
  const std::string needs = ": maps noise levels sigma_t / alpha_t to t, which needs an affine path (x_t = alpha_t x1 + "
                            "sigma_t x0), and ";
  const std::string tail = "; the grids uniform, cosine, logit_normal and list need no path";
  CHECK(message_of<flowlab::Error>([&] { grid("edm")->times(4, nullptr); }) ==
        "time_grid/edm" + needs + "none was given" + tail);
  CHECK(message_of<flowlab::Error>([&] { grid("shift")->times(1, path("bridge").get()); }) ==
        "time_grid/shift" + needs + "this path is not affine" + tail);
  flowlab::Params bad;
  bad.set("rho", 0.0);
  CHECK(message_of<flowlab::ParamError>([&] { grid("edm", bad); }) == "time_grid/edm: parameter 'rho' must be > 0, got 0");
  bad = flowlab::Params();
  bad.set("sigma_max", 0.001);
  CHECK(message_of<flowlab::ParamError>([&] { grid("edm", bad); }) ==
        "time_grid/edm: parameter 'sigma_max' must be finite and > sigma_min (0.002), got 0.001");
  bad = flowlab::Params();
  bad.set("s", -1.0);
  CHECK(message_of<flowlab::ParamError>([&] { grid("shift", bad); }) == "time_grid/shift: parameter 's' must be > 0, got -1");
}

TEST_CASE("a grid reaches every fixed-step solver: its states are at the grid's times", "[grid][solver]") {
  const auto rect = path("rectified");
  flowlab::Params edm;
  const std::vector<double> t = grid("edm", edm)->times(6, rect.get());
  const at::Tensor x0 = at::ones({3, 2}, at::kDouble);
  double euler_error = 0;
  for (const std::string name : {"euler", "midpoint", "heun", "rk4"}) {
    flowlab::SampleOptions opt;
    opt.grid = at::tensor(t, at::kDouble);
    std::vector<double> seen;
    opt.on_state = [&](double s, const at::Tensor&) { seen.push_back(s); };
    const auto r = registry().create<flowlab::Solver>("solver", name, flowlab::Params())
                       ->sample(x0, [](const at::Tensor& x, const at::Tensor& tt) { return x * tt.view({-1, 1}); }, opt);
    INFO(name);
    CHECK(seen == t);
    CHECK(r.accepted_steps == 6);
    // dx/dt = t x: Euler's state on this grid is the product of (1 + h_i t_i); the higher-order methods land
    // closer to x(1) = e^(1/2) than Euler does.
    const double got = r.x[0][0].item<double>();
    if (name == "euler") {
      double want = 1;
      for (size_t i = 0; i + 1 < t.size(); ++i) want *= 1 + (t[i + 1] - t[i]) * t[i];
      CHECK(std::abs(got - want) <= 1e-14);
      euler_error = std::abs(got - std::exp(0.5));
    } else {
      CHECK(std::abs(got - std::exp(0.5)) < euler_error);
    }
  }
}

TEST_CASE("tune_grid recovers the optimal Euler grid of a field with a closed-form optimum", "[grid][tune]") {
  // dx/dt = t^2: Euler's sum of h_i t_i^2 falls short of 1/3 on every grid, so the endpoint error is smallest where
  // the left Riemann sum is largest. Setting its derivative in t_i to zero gives
  //   t_{i+1} = t_i + (t_i^2 - t_{i-1}^2) / (2 t_i),  t_0 = 0,
  // a recursion fixed up to scale (t_2 = 1.5 t_1, ...), scaled so that t_N = 1.
  const int64_t n = 4;
  std::vector<double> want = {0.0, 1.0};
  for (int64_t i = 1; i < n; ++i) want.push_back(want[i] + (want[i] * want[i] - want[i - 1] * want[i - 1]) / (2 * want[i]));
  for (auto& w : want) w /= want.back();
  const at::Tensor x0 = at::zeros({1, 1}, at::kDouble);
  const flowlab::VelocityField field = [](const at::Tensor& x, const at::Tensor& t) {
    return (t * t).view({-1, 1}).expand_as(x).clone();
  };
  const flowlab::GridObjective endpoint = [](const at::Tensor& x) { return (x - 1.0 / 3).pow(2).mean().item<double>(); };
  const auto euler = registry().create<flowlab::Solver>("solver", "euler", flowlab::Params());
  std::vector<double> uniform;
  for (int64_t i = 0; i <= n; ++i) uniform.push_back(double(i) / n);
  flowlab::TuneGridOptions opt;
  opt.max_passes = 200;
  opt.line_search = 40;
  opt.tolerance = 1e-12;
  const flowlab::TunedGrid got = flowlab::tune_grid(*euler, field, x0, nullptr, endpoint, {{"uniform", uniform}}, opt);
  INFO("tuned: " << got.times[1] << " " << got.times[2] << " " << got.times[3] << " want " << want[1] << " " << want[2]
                 << " " << want[3] << " after " << got.passes << " passes");
  check_times(got.times, want, 2e-4);
  CHECK(got.start == "uniform");
  CHECK(got.objective < got.starts[0].second);
  // Deterministic: the same inputs give the same grid, bit for bit.
  CHECK(flowlab::tune_grid(*euler, field, x0, nullptr, endpoint, {{"uniform", uniform}}, opt).times == got.times);
}
