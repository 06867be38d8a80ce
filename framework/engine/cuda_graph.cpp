// sample_with_cuda_graph (cuda_graph.hpp): LibTorch's at::cuda::CUDAGraph around Solver::sample. Compiled with the
// capture only where LibTorch is a CUDA build (FLOWLAB_TORCH_CUDA); elsewhere it refuses.
#include "flowlab/cuda_graph.hpp"

#include <fmt/format.h>

#include <chrono>
#include <utility>
#include <vector>

#include "flowlab/errors.hpp"

#if FLOWLAB_TORCH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace flowlab {

#if FLOWLAB_TORCH_CUDA

bool cuda_graphs_built() { return true; }

SampleResult sample_with_cuda_graph(const Solver& solver, const Tensor& x0, const VelocityField& v,
                                    const SampleOptions& opt, double& replay_seconds) {
  if (!x0.is_cuda())
    throw Error(fmt::format("{}: a CUDA graph needs x0 on a GPU, got {}", solver.owner(), x0.device().str()));
  const c10::cuda::CUDAGuard device_guard(x0.device());
  c10::cuda::getCurrentCUDAStream().synchronize();
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  const Tensor x_static = x0.clone();
  SampleOptions quiet = opt;
  quiet.on_state = nullptr;
  quiet.check_finite = false;
  // Under capture every state is copied into memory of the graph's pool; the replay fills them.
  std::vector<std::pair<double, Tensor>> states;
  SampleOptions captured = quiet;
  if (opt.on_state) captured.on_state = [&states](double t, const Tensor& x) { states.emplace_back(t, x.clone()); };
  at::cuda::CUDAGraph graph;
  SampleResult r;
  {
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    solver.sample(x_static, v, quiet);  // the warm-up
    side.synchronize();
    // autocast's cache of casted weights must not keep tensors made inside the capture (as torch.cuda.graph does).
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    try {
      graph.capture_begin();
      r = solver.sample(x_static, v, captured);
      graph.capture_end();
    } catch (...) {
      // A capture that failed must still be ended, or the stream (and, in global mode, every stream) stays in
      // capture mode and the next CUDA call fails.
      try {
        graph.capture_end();  // ends the capture and returns the allocator's pool, when the capture is still valid
      } catch (...) {
      }
      cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
      if (cudaStreamIsCapturing(side.stream(), &capturing) == cudaSuccess && capturing != cudaStreamCaptureStatusNone) {
        cudaGraph_t partial = nullptr;
        cudaStreamEndCapture(side.stream(), &partial);
        if (partial) cudaGraphDestroy(partial);
      }
      (void)cudaGetLastError();
      at::autocast::set_autocast_cache_enabled(cache);
      throw;
    }
    at::autocast::set_autocast_cache_enabled(cache);
    const auto t0 = std::chrono::steady_clock::now();
    graph.replay();
    side.synchronize();
    replay_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.x = r.x.clone();
    side.synchronize();
  }
  if (opt.on_state)
    for (const auto& [t, x] : states) opt.on_state(t, x);
  return r;
}

#else

bool cuda_graphs_built() { return false; }

SampleResult sample_with_cuda_graph(const Solver& solver, const Tensor&, const VelocityField&, const SampleOptions&,
                                    double&) {
  throw Error(fmt::format("{}: eval.cuda_graph needs a CUDA build of LibTorch; this one is CPU-only", solver.owner()));
}

#endif

}  // namespace flowlab
