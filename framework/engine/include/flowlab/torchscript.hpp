// TorchScript export of a trained velocity network (flowlab export): a module that PyTorch loads with torch.jit.load.
#pragma once

#include <string>
#include <vector>

#include "flowlab/architecture.hpp"
#include "flowlab/export.hpp"

namespace flowlab {

/// Writes `model` (built for event shape `event_shape`, weights as they are) as a TorchScript module to `out`:
/// forward(x, t[, label][, attr, null]) -> v, x [B, ...event_shape], t [B], float32. A label-conditioned network
/// (`num_classes` > 0) takes label int64 [B], where label = num_classes is the null class of classifier-free guidance;
/// one conditioned on continuous attributes (`attr_dim` > 0) takes attr float32 [B, attr_dim] and null bool [B],
/// true on the rows that get the null condition (every part of it: the unconditional field of guidance). With
/// `step_input` (a few-step model) also step(x, t, d, ...the same conditions) -> u(x, t, d), its average velocity over
/// [t, t + d]. The module is a trace of the network on a batch of 2, run on ATen's ops (flowlab's fused CPU kernels
/// and blocked layout step aside while tracing: aten_ops_only), with the weights as the module's parameters
/// (state-dict names with '.' as '_'), so it takes any batch. The file is written to a temporary name and renamed.
FLOWLAB_API void export_torchscript(Architecture& model, const std::vector<int64_t>& event_shape, bool step_input,
                                    int64_t num_classes, int64_t attr_dim, const std::string& out);

}  // namespace flowlab
