// Training objectives: the target and loss a trial's network is trained on, from a batch of paired noise x0 and data
// x1 (flow matching's velocity regression, or a few-step method's average-velocity or consistency target).
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "flowlab/architecture.hpp"
#include "flowlab/path.hpp"
#include "flowlab/time_sampler.hpp"
#include "flowlab/weighting.hpp"

namespace flowlab {

/// What an objective reads besides the batch: the trial's model section.
struct ObjectiveContext {
  const Path* path = nullptr;                 ///< model.path
  const TimeSampler* time_sampler = nullptr;  ///< model.time_sampler
  const Weighting* weighting = nullptr;       ///< model.weighting
  /// The weighting is 1 at every time (weighting/uniform): a weighted mean may be computed as a plain one.
  bool uniform_weight = false;
  /// The feature extractor of Objective::features(), differentiable in its input (its own weights fixed); empty when
  /// the objective names none.
  std::function<Tensor(const Tensor&)> features;
};

/// The random draws of one training step (Objective::draw), made before the condition's dropout is drawn.
struct ObjectiveDraw {
  Tensor t;   ///< the times [B] the network is evaluated at
  Tensor d;   ///< the step input [B] of few-step objectives (ArchitectureSpec::step_input); else undefined
  Tensor xt;  ///< the network's input [B, ...]
  /// The path's velocity u_t at (xt, t) (flow matching's target). Every objective fills it: a guide network for
  /// autoguidance (eval.guidance.guide.architecture) learns it beside the model, whatever the model learns.
  Tensor target;
  std::vector<Tensor> more;  ///< anything else the objective's loss reads, in its own layout
};

/// The training objective of a trial: the `objective` plugin kind. One training step calls draw() (every random
/// number of the step), then loss() (the network), then backward on the loss.
class FLOWLAB_API Objective : public Plugin {
 public:
  /// Whether the network takes the step input d (Architecture::forward_step), as few-step models do.
  virtual bool step_input() const { return false; }
  /// Whether the objective trains on a reflow teacher's pairs (coupling/reflow) meaningfully; false refuses that
  /// coupling in the configuration.
  virtual bool accepts_teacher_pairs() const { return true; }
  /// The network's work per training row and step, in forward passes of one row: 1 for flow matching; a
  /// forward-mode JVP pass counts 2 (the value and its tangent), and forwards on part of the batch count their share.
  /// The one backward every objective takes is not counted. Reports use it to compare methods on one budget.
  virtual double calls_per_row() const { return 1; }
  /// A feature extractor the loss compares samples with ("builtin:digits", "builtin:fashion_mnist",
  /// "torchscript:PATH"; see the frechet metric), which the engine then passes as ObjectiveContext::features; ""
  /// (the default) for none.
  virtual std::string features() const { return ""; }
  /// Every random number of one step: times, the path's noise, the split of the batch. x0, x1 [B, ...]: paired
  /// noise and data. Draws from torch's default generator only.
  virtual ObjectiveDraw draw(const Tensor& x0, const Tensor& x1, const ObjectiveContext& ctx) const = 0;
  /// The scalar loss of the step on `model`; `cond` is the batch's condition after the dropout of classifier-free
  /// guidance. Draws no random numbers.
  virtual Tensor loss(const ObjectiveDraw& draw, const Condition& cond, Architecture& model,
                      const ObjectiveContext& ctx) const = 0;
};

namespace kinds {
/// The base class of the `objective` plugin kind (FLOWLAB_PLUGIN(objective, ...)).
using objective = Objective;
}  // namespace kinds

/// The weighted mean over rows of per-element squared errors, E_rows[w(t) mean(|pred - target|^2)], as flow
/// matching's loss: with ctx.uniform_weight one at::mse_loss (the same value up to the order of the float sums).
FLOWLAB_API Tensor weighted_squared_error(const Tensor& pred, const Tensor& target, const Tensor& t,
                                          const ObjectiveContext& ctx);

/// f(primals) and its Jacobian-vector product in the direction `tangents` (one per primal, same shapes), by
/// forward-mode AD (at::_make_dual). The value keeps its autograd graph (a loss on it trains the parameters); the
/// product is exact, not a finite difference, and detached (the objectives use it under a stop-gradient). While f runs,
/// forward_mode_ad() is true, so flowlab's fused CPU ops step aside to ATen's, which have forward derivatives.
FLOWLAB_API std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                          const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents);

/// True while jvp() evaluates its function on this thread.
FLOWLAB_API bool forward_mode_ad();

/// True while jvp() runs or a TorchScript trace records (flowlab::export_torchscript) on this thread: flowlab's fused
/// CPU ops (fused.hpp) and the blocked layout then step aside to ATen's ops, which forward-mode AD differentiates and
/// a trace records.
FLOWLAB_API bool aten_ops_only();

}  // namespace flowlab
