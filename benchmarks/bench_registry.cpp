// Registry costs: scanning N plugin libraries, create(), and a call through a plugin interface vs a direct call.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "flowlab/registry.hpp"
#include "flowlab/weighting.hpp"

namespace fs = std::filesystem;

// Scans a directory holding N copies of the solver library (5 plugins each, so 5N records).
static void BM_RegistryScan(benchmark::State& state) {
  const fs::path dir = fs::temp_directory_path() / ("flowlab_bench_scan_" + std::to_string(state.range(0)));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (int64_t i = 0; i < state.range(0); ++i)
    fs::copy_file(std::string(FLOWLAB_PLUGIN_BUILD_DIR) + "/libflowlab_solvers.so",
                  dir / ("libcopy" + std::to_string(i) + ".so"));
  for (auto _ : state) {
    flowlab::Registry reg({dir.string()}, false);
    benchmark::DoNotOptimize(reg.list().size());
  }
  state.counters["plugins"] = double(5 * state.range(0));
  fs::remove_all(dir);
}
BENCHMARK(BM_RegistryScan)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);

static void BM_Create(benchmark::State& state) {
  flowlab::Registry reg;
  auto keep = reg.create<flowlab::Weighting>("weighting", "uniform");  // library stays loaded
  flowlab::Params p;
  p.set("steps", std::int64_t{20});
  for (auto _ : state) benchmark::DoNotOptimize(reg.create<flowlab::Weighting>("weighting", "min_snr"));
}
BENCHMARK(BM_Create);

// The same tiny computation, through a plugin's virtual interface and written inline.
static void BM_CallThroughPlugin(benchmark::State& state) {
  flowlab::Registry reg;
  auto w = reg.create<flowlab::Weighting>("weighting", "endpoint");
  auto path = reg.create<flowlab::Path>("path", "rectified");
  const at::Tensor t = at::rand({256});
  for (auto _ : state) benchmark::DoNotOptimize(w->weight(t, *path));
}
BENCHMARK(BM_CallThroughPlugin);

static void BM_CallDirect(benchmark::State& state) {
  const at::Tensor t = at::rand({256});
  for (auto _ : state) benchmark::DoNotOptimize(t * t);
}
BENCHMARK(BM_CallDirect);
