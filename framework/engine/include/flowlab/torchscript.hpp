// TorchScript export of a trained velocity network (flowlab export): a module that PyTorch loads with torch.jit.load.
#pragma once

#include <string>
#include <vector>

#include "flowlab/architecture.hpp"
#include "flowlab/export.hpp"

namespace flowlab {

/// Writes `model` (built for event shape `event_shape`, weights as they are) as a TorchScript module to `out`:
/// forward(x, t) -> v, x [B, ...event_shape], t [B], float32 (a label-conditioned network, `num_classes` > 0:
/// forward(x, t, label) with label int64 [B], where label = num_classes is the null class of classifier-free
/// guidance); with `step_input` (a few-step model) also step(x, t, d[, label]) -> u(x, t, d), its average velocity over
/// [t, t + d]. The module is a trace of the network on a batch
/// of 2, run on ATen's ops (flowlab's fused CPU kernels and blocked layout step aside while tracing: aten_ops_only),
/// with the weights as the module's parameters (state-dict names with '.' as '_'), so it takes any batch. The file is
/// written to a temporary name and renamed. A network conditioned on continuous attributes is refused (Error).
FLOWLAB_API void export_torchscript(Architecture& model, const std::vector<int64_t>& event_shape, bool step_input,
                                    int64_t num_classes, bool attributes, const std::string& out);

}  // namespace flowlab
