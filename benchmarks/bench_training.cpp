// Training-step overhead of the engine against a hand-written LibTorch loop (same MLP plugin, batch, recipe
// and thread count; with torch::optim::AdamW, and with flowlab's flat optimizer), and the cost of writing a trial's
// HDF5 file against the training it records. Rates are per CPU second of the benchmark thread.
#include <benchmark/benchmark.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <ATen/Parallel.h>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/optimizer.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/results.hpp"
#include "flowlab/runtime.hpp"

namespace {

// As the flowlab executable does at start-up (every case in this binary runs with it).
const bool kAllocatorTuned = (flowlab::tune_allocator(), true);

constexpr int64_t kSteps = 200;
constexpr int64_t kBatch = 512;

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

// A one-trial experiment: ring of Gaussians, rectified path, 4 x 256 MLP, AdamW + EMA + clipping, no eval runs.
const flowlab::Experiment& experiment() {
  static const flowlab::Experiment ex = [] {
    const auto path = std::filesystem::temp_directory_path() / "flowlab_bench_training.yaml";
    std::ofstream(path) << "name: bench\ndata: {dataset: ring_gaussians}\nmodel:\n  architecture: {name: mlp, params: "
                           "{width: 256, depth: 4}}\ntrain: {steps: "
                        << kSteps << ", batch_size: " << kBatch
                        << ", lr: 1.0e-3, warmup: 10, ema: 0.999, grad_clip: 1.0, log_every: 10}\neval: {samples: 2}\n";
    return flowlab::load_experiment(path.string(), registry());
  }();
  return ex;
}

/// The hand-written loops' model: the experiment's MLP, built from seed 0 as the engine builds it.
std::shared_ptr<flowlab::Architecture> fresh_model() {
  torch::manual_seed(0);
  std::shared_ptr<flowlab::Architecture> model =
      registry().create<flowlab::Architecture>("architecture", "mlp", experiment().trials[0].architecture.params);
  model->build({{2}, 0, 0});
  return model;
}

/// The recipe's learning rate: linear warmup over 10 steps to 1e-3, then cosine to 0 at kSteps.
double recipe_lr(int64_t step) {
  return step < 10 ? 1e-3 * double(step + 1) / 10.0
                   : 1e-3 * 0.5 * (1 + std::cos(M_PI * double(step - 10) / double(kSteps - 10)));
}

/// The hand-written loops' loss: a batch of the ring of 8 Gaussians (radius 4, std 0.3) from Gaussian noise on
/// the straight path, squared error of the velocity (what the engine computes for the experiment above).
at::Tensor ring_loss(flowlab::Architecture& model) {
  const at::Tensor k = at::randint(8, {kBatch}, at::kLong);
  const at::Tensor angle = k.to(at::kFloat) * (2 * M_PI / 8);
  const at::Tensor x1 = at::stack({at::cos(angle), at::sin(angle)}, 1) * 4 + 0.3 * at::randn({kBatch, 2});
  const at::Tensor x0 = at::randn({kBatch, 2});
  const at::Tensor t = at::rand({kBatch});
  const at::Tensor tt = t.unsqueeze(1);
  return (model.forward((1 - tt) * x0 + tt * x1, t) - (x1 - x0)).pow(2).mean();
}

void BM_TrainEngine(benchmark::State& state) {
  at::set_num_threads(1);
  for (auto _ : state) benchmark::DoNotOptimize(flowlab::run_trial(experiment().trials[0], registry(), "cpu"));
  state.counters["steps_per_s"] = benchmark::Counter(double(kSteps), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TrainEngine)->Unit(benchmark::kMillisecond)->MinTime(3);

// The same recipe written directly: ring data, Gaussian noise, uniform t, rectified path, MSE, AdamW with warmup
// and cosine, clipping, EMA, a loss read every step (as any loop that watches for NaN must).
void BM_TrainHandLoop(benchmark::State& state) {
  at::set_num_threads(1);
  for (auto _ : state) {
    const auto model = fresh_model();
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).weight_decay(0));
    std::vector<at::Tensor> ema;
    for (const auto& p : model->parameters()) ema.push_back(p.detach().clone());
    double last = 0;
    for (int64_t step = 0; step < kSteps; ++step) {
      const double lr = recipe_lr(step);
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      const at::Tensor loss = ring_loss(*model);
      last = loss.item<double>();
      opt.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      opt.step();
      at::NoGradGuard g;
      const auto params = model->parameters();
      for (size_t i = 0; i < params.size(); ++i) ema[i].mul_(0.999).add_(params[i].detach(), 0.001);
    }
    benchmark::DoNotOptimize(last);
  }
  state.counters["steps_per_s"] = benchmark::Counter(double(kSteps), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TrainHandLoop)->Unit(benchmark::kMillisecond)->MinTime(3);

// The same loop with flowlab's flat AdamW, clipping and EMA (flowlab/optimizer.hpp) in place of
// torch::optim::AdamW, clip_grad_norm_ and the per-tensor EMA: against it, BM_TrainEngine shows the engine's own
// overhead (plugins, path, weighting, time sampler, logging), with the optimizer the same on both sides.
void BM_TrainHandLoopFlat(benchmark::State& state) {
  at::set_num_threads(1);
  for (auto _ : state) {
    const auto model = fresh_model();
    flowlab::FlatAdamW opt(model->parameters(), {1e-3, 0.9, 0.999, 1e-8, 0.0});
    flowlab::FlatEma ema(opt.flat_parameters());
    double last = 0;
    for (int64_t step = 0; step < kSteps; ++step) {
      opt.set_lr(recipe_lr(step));
      const at::Tensor loss = ring_loss(*model);
      last = loss.item<double>();
      opt.zero_grad();
      loss.backward();
      opt.clip_grad_norm(1.0);
      opt.step(&ema, flowlab::ema_decay(0.999, step));
    }
    benchmark::DoNotOptimize(last);
  }
  state.counters["steps_per_s"] = benchmark::Counter(double(kSteps), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TrainHandLoopFlat)->Unit(benchmark::kMillisecond)->MinTime(3);

// Writing a trial file with a 20000-step log (2000 logged rows) and a 20-row eval table.
void BM_WriteTrialFile(benchmark::State& state) {
  flowlab::TrialResult r;
  r.id = "bench", r.status = "completed", r.device = "cpu";
  for (int64_t i = 0; i < 20000; i += 10) {
    r.train.step.push_back(i), r.train.loss.push_back(1.0 / (i + 1)), r.train.grad_norm.push_back(1), r.train.lr.push_back(1e-3);
  }
  r.metric_names = {"frechet"};
  for (int i = 0; i < 20; ++i) {
    flowlab::EvalRow row;
    row.solver = "euler", row.steps = i + 1, row.metrics = {0.1};
    r.eval.push_back(row);
  }
  flowlab::TrialConfig t = experiment().trials[0];
  t.id = "bench";
  const std::string path = (std::filesystem::temp_directory_path() / "flowlab_bench_trial.h5").string();
  for (auto _ : state) flowlab::write_trial_file(path, t, r);
  std::filesystem::remove(path);
}
BENCHMARK(BM_WriteTrialFile)->Unit(benchmark::kMillisecond);

}  // namespace
