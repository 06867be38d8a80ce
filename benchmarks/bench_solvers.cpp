// Solver costs: overhead per NFE on a cheap field, and a 4x256 MLP field over 10k points x 100 NFE against a
// hand-written LibTorch Euler loop in the same run.
#include <benchmark/benchmark.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "flowlab/path.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/solver.hpp"

namespace {

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

// A field so cheap that the time per NFE is nearly all solver overhead.
at::Tensor cheap(const at::Tensor& x, const at::Tensor&) { return x; }

torch::nn::Sequential mlp() {
  torch::nn::Sequential net(torch::nn::Linear(3, 256), torch::nn::SiLU(), torch::nn::Linear(256, 256), torch::nn::SiLU(),
                            torch::nn::Linear(256, 256), torch::nn::SiLU(), torch::nn::Linear(256, 256),
                            torch::nn::SiLU(), torch::nn::Linear(256, 2));
  net->eval();
  return net;
}

}  // namespace

static void BM_FieldOnly(benchmark::State& state) {
  const at::Tensor x = at::randn({64, 2});
  const at::Tensor t = at::zeros({64});
  for (auto _ : state) benchmark::DoNotOptimize(cheap(x, t) * 0.5 + x);
}
BENCHMARK(BM_FieldOnly);

// Time per NFE with the cheap field; subtract BM_FieldOnly for the solver's own share.
// (The rectified path is passed for the data-prediction solvers, dpmpp_2m and unipc.)
static void BM_SolverPerNfe(benchmark::State& state, const char* name) {
  auto s = registry().create<flowlab::Solver>("solver", name);
  const auto path = registry().create<flowlab::Path>("path", "rectified");
  flowlab::SampleOptions so;
  so.path = path.get();
  const at::Tensor x = at::randn({64, 2});
  int64_t nfe = 0;
  for (auto _ : state) {
    auto r = s->sample(x, cheap, so);
    nfe += r.nfe;
    benchmark::DoNotOptimize(r.x);
  }
  state.counters["ns_per_nfe"] =
      benchmark::Counter(double(nfe), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK_CAPTURE(BM_SolverPerNfe, euler, "euler");
BENCHMARK_CAPTURE(BM_SolverPerNfe, midpoint, "midpoint");
BENCHMARK_CAPTURE(BM_SolverPerNfe, heun, "heun");
BENCHMARK_CAPTURE(BM_SolverPerNfe, rk4, "rk4");
BENCHMARK_CAPTURE(BM_SolverPerNfe, dopri5, "dopri5");
BENCHMARK_CAPTURE(BM_SolverPerNfe, heun3, "heun3");
BENCHMARK_CAPTURE(BM_SolverPerNfe, bosh3, "bosh3");
BENCHMARK_CAPTURE(BM_SolverPerNfe, tsit5, "tsit5");
BENCHMARK_CAPTURE(BM_SolverPerNfe, dopri8, "dopri8");
BENCHMARK_CAPTURE(BM_SolverPerNfe, adams_bashforth, "adams_bashforth");
BENCHMARK_CAPTURE(BM_SolverPerNfe, dpmpp_2m, "dpmpp_2m");
BENCHMARK_CAPTURE(BM_SolverPerNfe, unipc, "unipc");

// 10k points, 100 Euler steps of a 4x256 MLP: flowlab's solver ...
static void BM_MlpFlowlabEuler(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto net = mlp();
  flowlab::VelocityField v = [&](const at::Tensor& x, const at::Tensor& t) {
    return net->forward(at::cat({x, t.unsqueeze(1)}, 1));
  };
  flowlab::Params p;
  p.set("steps", std::int64_t{100});
  auto s = registry().create<flowlab::Solver>("solver", "euler", p);
  torch::manual_seed(0);
  const at::Tensor x0 = at::randn({10000, 2});
  for (auto _ : state) benchmark::DoNotOptimize(s->sample(x0, v).x);
}
BENCHMARK(BM_MlpFlowlabEuler)->Unit(benchmark::kMillisecond)->Iterations(3);

// ... and the same integration written by hand.
static void BM_MlpHandLoop(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto net = mlp();
  torch::manual_seed(0);
  const at::Tensor x0 = at::randn({10000, 2});
  for (auto _ : state) {
    at::Tensor x = x0;
    const int64_t n = 100;
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor t = at::full({x.size(0), 1}, double(i) / n);
      x = x + (1.0 / n) * net->forward(at::cat({x, t}, 1));
    }
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_MlpHandLoop)->Unit(benchmark::kMillisecond)->Iterations(3);

// Time per NFE of each solver on the 4x256 MLP over 10k points, next to euler's: the method's own work (stage
// combinations, error norms, step control) against the network's. Fixed-step solvers take about 100 NFE, adaptive
// ones rtol = atol = 1e-4 (counter ms_per_nfe; the ratio to euler's is the overhead).
static void BM_MlpPerNfe(benchmark::State& state, const char* name, std::int64_t steps) {
  torch::NoGradGuard no_grad;
  auto net = mlp();
  flowlab::VelocityField v = [&](const at::Tensor& x, const at::Tensor& t) {
    return net->forward(at::cat({x, t.unsqueeze(1)}, 1));
  };
  flowlab::Params p;
  if (steps > 0) p.set("steps", steps);
  else p.set("rtol", 1e-4).set("atol", 1e-4);
  auto s = registry().create<flowlab::Solver>("solver", name, p);
  const auto path = registry().create<flowlab::Path>("path", "rectified");  // the multistep methods' schedule
  flowlab::SampleOptions so;
  so.path = path.get();
  torch::manual_seed(0);
  const at::Tensor x0 = at::randn({10000, 2});
  int64_t nfe = 0;
  for (auto _ : state) {
    auto r = s->sample(x0, v, so);
    nfe += r.nfe;
    benchmark::DoNotOptimize(r.x);
  }
  state.counters["nfe"] = double(nfe) / double(state.iterations());
  state.counters["ms_per_nfe"] =
      benchmark::Counter(double(nfe) * 1e-3, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK_CAPTURE(BM_MlpPerNfe, euler, "euler", 100)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, heun3, "heun3", 34)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, adaptive_heun, "adaptive_heun", 0)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, fehlberg2, "fehlberg2", 0)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, bosh3, "bosh3", 0)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, dopri5, "dopri5", 0)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, tsit5, "tsit5", 0)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, dopri8, "dopri8", 0)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, adams_bashforth, "adams_bashforth", 100)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, dpmpp_2m, "dpmpp_2m", 100)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_MlpPerNfe, unipc, "unipc", 100)->Unit(benchmark::kMillisecond)->Iterations(3);
