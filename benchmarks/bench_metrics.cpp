// Metric costs at 2000 x 2000 and 10000 x 10000 points (2D: a Gaussian against the 8-mode ring) where the metric is
// meant to run at that size; w2 (exact optimal transport) at 2000 and 5000 only (its max_points default).
// BM_W2_File (registered only when FLOWLAB_W2_POINTS names a file) times w2 on the sets of benchmarks/w2_vs_pot.sh.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/likelihood.hpp"
#include "flowlab/metric.hpp"
#include "flowlab/registry.hpp"

namespace {

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

/// n generated points (a standard Gaussian) and n reference points (8 Gaussians of std 0.3 on a ring of radius 4).
std::pair<at::Tensor, at::Tensor> sets(int64_t n) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({n, 2}, at::kDouble);
  const at::Tensor angle = at::randint(8, {n}, at::kLong).to(at::kDouble) * (M_PI / 4);
  const at::Tensor y = at::stack({at::cos(angle), at::sin(angle)}, 1) * 4 + 0.3 * at::randn({n, 2}, at::kDouble);
  return {x, y};
}

void BM_Metric(benchmark::State& state, const char* name) {
  auto metric = registry().create<flowlab::Metric>("metric", name);
  const auto [x, y] = sets(state.range(0));
  double value = 0;
  for (auto _ : state) benchmark::DoNotOptimize(value = metric->compute(x, y));
  state.SetLabel(fmt::format("{:.6g}", value));
}

/// The sets of w2_vs_pot.sh: "n m d" then n + m rows of d values.
void BM_W2_File(benchmark::State& state, const std::string& path) {
  std::ifstream in(path);
  int64_t n = 0, m = 0, d = 0;
  in >> n >> m >> d;
  std::vector<double> v(static_cast<size_t>((n + m) * d));
  for (double& e : v) in >> e;
  if (!in) {
    state.SkipWithError(("cannot read " + path).c_str());
    return;
  }
  const at::Tensor all = at::tensor(v, at::kDouble).reshape({n + m, d});
  const at::Tensor x = all.slice(0, 0, n), y = all.slice(0, n);
  auto w2 = registry().create<flowlab::Metric>("metric", "w2");
  double value = 0;
  for (auto _ : state) benchmark::DoNotOptimize(value = w2->compute(x, y));
  state.SetLabel(fmt::format("{:.17g}", value));
}

const bool file_benchmark_registered = [] {
  if (const char* path = std::getenv("FLOWLAB_W2_POINTS"))
    benchmark::RegisterBenchmark("BM_W2_File", BM_W2_File, std::string(path))->Unit(benchmark::kMillisecond)->MinTime(2.0);
  return true;
}();

/// One evaluation of the likelihood's augmented field on the 4x256 MLP at 1000 points of dimension D: the network
/// alone ("forward"), with the exact divergence (D vector-Jacobian products) or with Hutchinson's estimate (one probe).
/// metric/nll's exact_max_dim default (16) comes from these ratios.
void BM_Divergence(benchmark::State& state, const char* mode) {
  const int64_t d = state.range(0), n = 1000;
  auto model = registry().create<flowlab::Architecture>(
      "architecture", "mlp", flowlab::Params().set("width", int64_t(256)).set("depth", int64_t(4)));
  model->build({{d}, 0, 0});
  model->eval();
  const flowlab::VelocityField v = [&](const at::Tensor& x, const at::Tensor& t) { return model->forward(x, t); };
  at::manual_seed(0);
  const at::Tensor x = at::randn({n, d}), t = at::full({n}, 0.5);
  const std::string m = mode;
  const at::Tensor probes = m == "hutchinson" ? at::randn({1, n, d}) : at::Tensor();
  for (auto _ : state) {
    if (m == "forward") {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(v(x, t));
    } else {
      benchmark::DoNotOptimize(flowlab::divergence(v, x, t, probes));
    }
  }
}

}  // namespace

BENCHMARK_CAPTURE(BM_Divergence, forward, "forward")->Arg(2)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Divergence, exact, "exact")->Arg(2)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Divergence, hutchinson, "hutchinson")->Arg(2)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Metric, w2, "w2")->Arg(2000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Metric, w2, "w2")->Arg(5000)->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_Metric, sliced_wasserstein, "sliced_wasserstein")->Arg(2000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Metric, energy, "energy")->Arg(2000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Metric, mmd, "mmd")->Arg(2000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Metric, kid, "kid")->Arg(2000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Metric, frechet, "frechet")->Arg(2000)->Arg(10000)->Unit(benchmark::kMillisecond);
