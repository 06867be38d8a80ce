// Forward + backward throughput (samples/s) of each architecture at a reference size; the U-Net also on its ATen
// (NCHW) path, against its default channel-blocked path (flowlab/blocked.hpp).
#include <benchmark/benchmark.h>

#include <optional>

#include "flowlab/architecture.hpp"
#include "flowlab/detail/blocked.hpp"
#include "flowlab/registry.hpp"

namespace {

const flowlab::Registry& registry() {
  static const flowlab::Registry reg;
  return reg;
}

// Reference sizes: the MLP (defaults: 4 x 256) on 2D points, batch 512; the U-Net (defaults: 32 channels,
// mult 1,2,2) and the DiT (defaults: hidden 128, depth 4, patch 2) on Fashion-MNIST-sized images, batch 32.
void forward_backward(benchmark::State& state, const char* name, std::vector<int64_t> shape, int64_t batch,
                      bool plain_layout = false) {
  std::optional<flowlab::PlainLayoutGuard> plain;
  if (plain_layout) plain.emplace();
  auto a = registry().create<flowlab::Architecture>("architecture", name);
  a->build({shape, 10, 0});
  std::vector<int64_t> full = {batch};
  full.insert(full.end(), shape.begin(), shape.end());
  const at::Tensor x = at::randn(full), t = at::rand({batch});
  flowlab::Condition c;
  c.label = at::randint(10, {batch}, at::kLong);
  for (auto _ : state) {
    a->zero_grad();
    a->forward(x, t, c).pow(2).mean().backward();
  }
  state.counters["samples_per_s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(forward_backward, mlp_2d_b512, "mlp", std::vector<int64_t>{2}, 512)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(forward_backward, unet_28x28_b32, "unet", std::vector<int64_t>{1, 28, 28}, 32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(forward_backward, unet_28x28_b32_plain_layout, "unet", std::vector<int64_t>{1, 28, 28}, 32, true)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(forward_backward, dit_28x28_b32, "dit", std::vector<int64_t>{1, 28, 28}, 32)
    ->Unit(benchmark::kMillisecond);
