// Couplings and reflow: minibatch OT per batch (the points may come from a file shared with POT, see
// ot_vs_pot.sh), the training step with and without it, and the cost of generating reflow pairs against plain
// sampling with the same network, solver and steps.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/config.hpp"
#include "flowlab/coupling.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/transport.hpp"

namespace {

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

/// x0 and x1 [B, D]: read from $FLOWLAB_OT_DIR/ot_B_D.txt ("B D" then 2B rows) when set, else standard normal.
std::pair<at::Tensor, at::Tensor> points(int64_t b, int64_t d) {
  if (const char* dir = std::getenv("FLOWLAB_OT_DIR")) {
    std::ifstream in(std::string(dir) + "/ot_" + std::to_string(b) + "_" + std::to_string(d) + ".txt");
    int64_t nb = 0, nd = 0;
    in >> nb >> nd;
    if (!in || nb != b || nd != d) throw std::runtime_error("bad points file in FLOWLAB_OT_DIR");
    std::vector<float> v(size_t(2 * b * d));
    for (auto& x : v) in >> x;
    const at::Tensor all = at::tensor(v).view({2 * b, d});
    return {all.slice(0, 0, b).clone(), all.slice(0, b).clone()};
  }
  torch::manual_seed(0);
  return {at::randn({b, d}), at::randn({b, d})};
}

// One batch re-paired by coupling/minibatch_ot: the cost matrix and the exact assignment. The label is the coupled
// total squared distance (compared with POT's by ot_vs_pot.sh).
void BM_MinibatchOT(benchmark::State& state) {
  at::set_num_threads(1);
  const auto [x0, x1] = points(state.range(0), state.range(1));
  auto ot = registry().create<flowlab::Coupling>("coupling", "minibatch_ot", flowlab::Params());
  flowlab::Pairing p;
  for (auto _ : state) benchmark::DoNotOptimize(p = ot->pair(x0, x1));
  const double cost = (x0.index_select(0, p.i0).to(at::kDouble) - x1.index_select(0, p.i1).to(at::kDouble)).pow(2).sum().item<double>();
  state.SetLabel(std::to_string(cost));
}
BENCHMARK(BM_MinibatchOT)->Args({256, 2})->Args({256, 784})->Args({1024, 2})->Args({1024, 784})->Unit(benchmark::kMillisecond);

// The exact assignment alone on the cost matrix of the same points (what POT's ot.emd is given in ot_vs_pot.sh).
void BM_AssignmentOnly(benchmark::State& state) {
  at::set_num_threads(1);
  const auto [x0, x1] = points(state.range(0), state.range(1));
  const at::Tensor cost = flowlab::squared_euclidean_cost(x0, x1);
  for (auto _ : state) benchmark::DoNotOptimize(flowlab::optimal_assignment(cost, "bench"));
}
BENCHMARK(BM_AssignmentOnly)->Args({256, 2})->Args({256, 784})->Args({1024, 2})->Args({1024, 784})->Unit(benchmark::kMillisecond);

// The pieces of one minibatch_ot batch: the cost matrix alone, and the exact assignment alone.
void BM_AssignmentParts(benchmark::State& state) {
  at::set_num_threads(1);
  const auto [x0, x1] = points(state.range(0), state.range(1));
  const at::Tensor cost = flowlab::squared_euclidean_cost(x0, x1);
  for (auto _ : state) {
    if (state.range(2) == 0)
      benchmark::DoNotOptimize(flowlab::squared_euclidean_cost(x0, x1));
    else
      benchmark::DoNotOptimize(flowlab::optimal_assignment(cost, "bench"));
  }
  state.SetLabel(state.range(2) == 0 ? "cost matrix" : "assignment");
}
BENCHMARK(BM_AssignmentParts)->Args({256, 2, 0})->Args({256, 2, 1})->Args({256, 784, 0})->Args({1024, 2, 1})
    ->Unit(benchmark::kMillisecond);

flowlab::TrialConfig trial(const std::string& yaml) {
  const auto path = std::filesystem::temp_directory_path() / "flowlab_bench_couplings.yaml";
  std::ofstream(path) << yaml;
  return flowlab::load_experiment(path.string(), registry()).trials.at(0);
}

// The training step of a width-64 MLP at batch 256 to moons, with the coupling in range(0): 0 independent,
// 1 minibatch_ot paired in order (on the training thread), 2 minibatch_ot paired ahead on the engine's
// helper thread (the default); from range(1): 0 8 Gaussians (a hard assignment), 1 the standard Gaussian. The ratio
// to the independent step is the coupling's overhead.
void BM_TrainStepCoupling(benchmark::State& state) {
  at::set_num_threads(1);
  const std::string coupling = state.range(0) == 0 ? "independent" : "minibatch_ot";
  const bool eight = state.range(1) == 0;
  constexpr int64_t kSteps = 1000;  // enough that the trial's set-up (plugins, data) is a small share
  const auto t = trial("name: b\ndata: {dataset: moons}\nmodel:\n" +
                       std::string(eight ? "  noise: {dataset: eight_gaussians}\n" : "") + "  coupling: " + coupling +
                       "\n  architecture: {name: mlp, params: {width: 64, depth: 3}}\ntrain: {steps: " +
                       std::to_string(kSteps) + ", batch_size: 256, ema: 0.999}\neval: {samples: 2}\n");
  flowlab::set_pairing_ahead(state.range(0) == 2);
  for (auto _ : state) benchmark::DoNotOptimize(flowlab::run_trial(t, registry(), "cpu"));
  flowlab::set_pairing_ahead(true);
  state.SetLabel(coupling + (state.range(0) == 1 ? " in order" : state.range(0) == 2 ? " ahead" : "") +
                 (eight ? ", 8 Gaussians -> moons" : ", Gaussian -> moons"));
  state.counters["steps_per_s"] = benchmark::Counter(double(kSteps), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TrainStepCoupling)->ArgsProduct({{0, 1, 2}, {0, 1}})->Unit(benchmark::kMillisecond)->MinTime(2)->UseRealTime();

// Reflow pairs against plain sampling: 8192 pairs from a 4 x 256 MLP teacher with Euler at 20 steps, as the engine
// makes them (its pair_seconds), and the same solve of the same number of points through solver/euler directly.
// Counters: pairs per second, NFE per second for both, and the overhead of pair generation.
void BM_ReflowPairs(benchmark::State& state) {
  at::set_num_threads(1);
  constexpr int64_t kPairs = 8192, kSteps = 20;
  const auto t = trial("name: b\ndata: {dataset: moons}\nmodel:\n  architecture: {name: mlp, params: {width: 256, "
                       "depth: 4}}\ntrain: {steps: 1, batch_size: 16}\nreflow: {rounds: 1, pairs: " +
                       std::to_string(kPairs) + ", teacher_solver: {solver: euler, steps: " + std::to_string(kSteps) +
                       "}, train: {steps: 1}}\neval: {samples: 2}\n");
  auto model = registry().create<flowlab::Architecture>("architecture", "mlp", t.architecture.params);
  model->build({{2}, 0, 0});
  model->eval();
  auto euler = registry().create<flowlab::Solver>("solver", "euler", t.reflow.teacher.solver.params);
  const flowlab::VelocityField field = [&](const at::Tensor& x, const at::Tensor& tt) { return model->forward(x, tt); };
  double pair_s = 0, sample_s = 0;
  for (auto _ : state) {
    pair_s += flowlab::run_trial(t, registry(), "cpu").rounds.at(1).pair_seconds;
    at::NoGradGuard g;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < kPairs; i += 4096) benchmark::DoNotOptimize(euler->sample(at::randn({4096, 2}), field));
    sample_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double n = double(state.iterations());
  state.counters["pairs_per_s"] = kPairs * n / pair_s;
  state.counters["pair_nfe_per_s"] = kSteps * n / pair_s;
  state.counters["sample_nfe_per_s"] = kSteps * n / sample_s;
  state.counters["overhead_pct"] = 100.0 * (pair_s / sample_s - 1.0);
}
BENCHMARK(BM_ReflowPairs)->Unit(benchmark::kMillisecond)->MinTime(3);

}  // namespace
