// What importing costs (issue 29.3): a network exported with flowlab::export_torchscript and run through
// architecture/torchscript, against the same network as the flowlab plugin, in one loop that alternates them. Two
// workloads: a training step (forward + backward, batch 512) and a solver's evaluation (no autograd, 10 000 points,
// one time shared by every row). `vs_plugin` is the TorchScript module's time over the plugin's.
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>

#include "flowlab/architecture.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/torchscript.hpp"

namespace {

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

template <class F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_TorchScriptVsPlugin(benchmark::State& state, bool training) {
  at::set_num_threads(1);
  torch::manual_seed(0);
  auto plugin = registry().create<flowlab::Architecture>("architecture", "mlp");  // 4 x 256
  plugin->build({{2}, 0, 0});
  const std::string file = (std::filesystem::temp_directory_path() / "flowlab_bench_field.pt").string();
  flowlab::export_torchscript(*plugin, {2}, false, 0, 0, file);
  auto imported = registry().create<flowlab::Architecture>("architecture", "torchscript", flowlab::Params().set("file", file));
  imported->build({{2}, 0, 0});
  const int64_t b = training ? 512 : 10000;
  const at::Tensor x = at::randn({b, 2}), t = training ? at::rand({b}) : at::scalar_tensor(0.5).expand({b});
  auto run = [&](flowlab::Architecture& a) {
    if (training) {
      a.zero_grad();
      a.forward(x, t).pow(2).mean().backward();
    } else {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(a.forward(x, t));
    }
  };
  double mine = 0, base = 0;
  for (auto _ : state) {
    mine += seconds([&] { run(*imported); });
    base += seconds([&] { run(*plugin); });
  }
  state.counters["vs_plugin"] = mine / base;
  state.counters["plugin_ms"] = 1e3 * base / double(state.iterations());
}

BENCHMARK_CAPTURE(BM_TorchScriptVsPlugin, mlp_train_step_b512, true)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_TorchScriptVsPlugin, mlp_eval_10k, false)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
