// eval.cuda_graph: a fixed-step solver's sampling loop captured once as a CUDA graph and replayed.
#pragma once

#include "flowlab/export.hpp"
#include "flowlab/solver.hpp"

namespace flowlab {

/// Whether this build can capture CUDA graphs (a CUDA build of LibTorch).
FLOWLAB_API bool cuda_graphs_built();

/// Samples x0 (on a GPU) with `solver` as `solver.sample(x0, v, opt)` would: one eager warm-up solve on a side
/// stream (cuBLAS handles and workspaces are made outside the capture), then the solve captured as a CUDA graph
/// and replayed once; `replay_seconds` is the replay's time, to the end of its work. The NFE and steps are the
/// captured solve's; the field is not checked per evaluation (a host sync), so the caller checks the samples.
/// `opt.on_state` sees the replayed states afterwards, in order. Throws flowlab::Error on a CPU-only build.
FLOWLAB_API SampleResult sample_with_cuda_graph(const Solver& solver, const Tensor& x0, const VelocityField& v,
                                                const SampleOptions& opt, double& replay_seconds);

}  // namespace flowlab
