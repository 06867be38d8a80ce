// Time samplers: 10^5 draws lie in [0, 1] and pass a Kolmogorov-Smirnov test against the analytic CDF at 99%.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/generators/catch_generators_range.hpp>

#include <cmath>

#include "flowlab/registry.hpp"
#include "support.hpp"
#include "flowlab/time_sampler.hpp"

using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {


// sup_t |F_n(t) - F(t)| over the sorted sample.
double ks_distance(const flowlab::TimeSampler& s, const at::Tensor& draws) {
  const at::Tensor sorted = std::get<0>(draws.to(at::kDouble).sort());
  const double* x = sorted.data_ptr<double>();
  const int64_t n = sorted.numel();
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double f = s.cdf(x[i]);
    d = std::max({d, std::abs(f - double(i) / n), std::abs(double(i + 1) / n - f)});
  }
  return d;
}

// 99% critical value of the one-sample KS statistic, asymptotic form sqrt(-ln(0.005) / 2) / sqrt(n).
double ks_critical_99(int64_t n) { return std::sqrt(-std::log(0.005) / 2) / std::sqrt(double(n)); }

void check_sampler(const std::string& name, const flowlab::Params& p) {
  constexpr int64_t kN = 100000;
  auto s = registry().create<flowlab::TimeSampler>("time_sampler", name, p);
  at::manual_seed(1234);
  const at::Tensor t = s->sample(kN, at::kDouble);
  REQUIRE(t.numel() == kN);
  CHECK(t.min().item<double>() >= 0.0);
  CHECK(t.max().item<double>() <= 1.0);
  const double d = ks_distance(*s, t);
  INFO("time_sampler/" << name << ": KS distance " << d << ", critical " << ks_critical_99(kN));
  CHECK(d < ks_critical_99(kN));
}

}  // namespace

TEST_CASE("contract: every time sampler matches its CDF (KS, 10^5 draws)", "[time_sampler][contract]") {
  std::vector<std::string> names;
  for (const auto& info : registry().list("time_sampler")) names.push_back(info.name);
  REQUIRE(names.size() >= 5);
  check_sampler(GENERATE_COPY(from_range(names)), flowlab::Params());
}

TEST_CASE("time samplers with non-default parameters match their CDFs", "[time_sampler]") {
  flowlab::Params k;
  k.set("k", 0.5);
  check_sampler("power", k);
  flowlab::Params ln;
  ln.set("m", 0.5).set("s", 0.7);
  check_sampler("logit_normal", ln);
  flowlab::Params b;
  b.set("a", 0.5).set("b", 3.0);
  check_sampler("beta", b);
}

TEST_CASE("a KS test against the wrong CDF fails (the test can fail)", "[time_sampler]") {
  auto uniform = registry().create<flowlab::TimeSampler>("time_sampler", "uniform");
  flowlab::Params k;
  k.set("k", 1.2);
  auto power = registry().create<flowlab::TimeSampler>("time_sampler", "power", k);
  at::manual_seed(1);
  CHECK(ks_distance(*uniform, power->sample(100000, at::kDouble)) > ks_critical_99(100000));
}

TEST_CASE("stratified puts exactly one draw in each bin", "[time_sampler]") {
  auto s = registry().create<flowlab::TimeSampler>("time_sampler", "stratified");
  const at::Tensor t = s->sample(64, at::kDouble);
  const at::Tensor bins = std::get<0>((t * 64).floor().sort());
  CHECK(at::equal(bins, at::arange(64, at::kDouble)));
}

TEST_CASE("bad time sampler parameters name the parameter", "[time_sampler][errors]") {
  auto msg = [](const std::string& name, const std::string& param, double v) {
    flowlab::Params p;
    p.set(param, v);
    try {
      registry().create<flowlab::TimeSampler>("time_sampler", name, p);
    } catch (const flowlab::ParamError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(msg("power", "k", 0.0) == "time_sampler/power: parameter 'k' must be > 0, got 0");
  CHECK(msg("logit_normal", "s", -1.0) == "time_sampler/logit_normal: parameter 's' must be > 0, got -1");
  CHECK(msg("beta", "b", 0.0) == "time_sampler/beta: parameter 'b' must be > 0, got 0");
}
