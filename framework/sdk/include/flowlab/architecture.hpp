// Velocity networks v(x, t, cond): torch::nn::Module plugins, with the shared time and condition embedders and
// classifier-free guidance.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "flowlab/plugin.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// The condition of a batch. Undefined tensors mean "no condition"; `drop` [B] (bool) marks the rows that get
/// the null condition (classifier-free guidance). A model built with conditions treats an undefined label or
/// attribute as the null condition for every row.
struct Condition {
  Tensor label;  ///< [B] int64 class labels
  Tensor attr;   ///< [B, A] continuous attributes
  Tensor drop;   ///< [B] bool
};

/// What the network is built for; passed once, before the first forward.
struct ArchitectureSpec {
  std::vector<int64_t> event_shape;  ///< [D] or [C, H, W]
  int64_t num_classes = 0;           ///< 0: no class conditioning
  int64_t attr_dim = 0;              ///< 0: no continuous condition
  /// Also take the step input d (forward_step): the models of few-step objectives (objective/meanflow,
  /// objective/shortcut). Only for an architecture whose has_step_input() is true.
  bool step_input = false;
};

/// A velocity network v(x, t, cond), the `architecture` plugin kind: a torch::nn::Module whose layers are made by
/// build() for the data's shape and conditions.
class FLOWLAB_API Architecture : public Plugin, public torch::nn::Module {
 public:
  /// Creates the submodules for data of this shape and these conditions. Throws flowlab::Error for a shape the
  /// architecture cannot take (the message says which shapes it can).
  virtual void build(const ArchitectureSpec& spec) = 0;
  /// v(x, t, cond): x [B, ...], t [B]; returns a tensor shaped like x.
  virtual Tensor forward(const Tensor& x, const Tensor& t, const Condition& cond = Condition()) = 0;
  /// Whether build() can add a second time input, the step size d (ArchitectureSpec::step_input), embedded like t.
  virtual bool has_step_input() const { return false; }
  /// u(x, t, d, cond) of a model built with spec.step_input: x, t [B], d [B] (the step, d >= 0); shaped like x.
  /// forward(x, t, cond) of such a model is forward_step at d = 0. It must be differentiable in forward mode
  /// (at::_make_dual: MeanFlow's target is a Jacobian-vector product of it), so it uses no custom autograd op
  /// that lacks a forward derivative. The default throws Error.
  virtual Tensor forward_step(const Tensor& x, const Tensor& t, const Tensor& d, const Condition& cond = Condition());
};

namespace kinds {
/// The base class of the `architecture` plugin kind (FLOWLAB_PLUGIN(architecture, ...)).
using architecture = Architecture;
}  // namespace kinds

/// True when every row of t [B] holds the same time by construction: t is a broadcast (stride-0) view of one value,
/// as the solvers pass it (Field). An architecture may then embed t once, as a [1, dim] row that broadcasts over
/// the batch, instead of B equal rows.
inline bool shared_time(const Tensor& t) { return t.dim() == 1 && t.size(0) > 1 && t.stride(0) == 0; }

/// Sinusoidal features of t [B] in [0, 1]: [B, dim] = [cos(f_k t), sin(f_k t)] for k < dim / 2, frequencies
/// geometric from f_0 = pi up to f_{half-1} = max_frequency (radians per unit time), plus 2t - 1 as the last column
/// when dim is odd. The lowest pair (cos pi t, sin pi t) walks half a circle as t goes from 0 to 1, so t is
/// recoverable from the features at every width (the DDPM/DiT form, 1000 t times max_period^(-k/half), aliases t at
/// small widths: with dim 2 it is cos(1000 t), sin(1000 t)).
FLOWLAB_API Tensor sinusoidal_embedding(const Tensor& t, int64_t dim, double max_frequency = 1000.0);

/// Embeds a Condition into [B, dim]: a class embedding with one extra "null" row, plus a linear map of the
/// continuous attributes with a learned null vector. Rows marked in `drop`, and absent conditions, get the nulls.
class FLOWLAB_API ConditionEmbedderImpl : public torch::nn::Module {
 public:
  /// An embedder for `num_classes` classes (0: none) and `attr_dim` attributes (0: none) into `dim` features.
  ConditionEmbedderImpl(int64_t num_classes, int64_t attr_dim, int64_t dim);
  /// The embedding [batch, dim] of `cond`; absent parts and dropped rows get the null embeddings.
  Tensor forward(const Condition& cond, int64_t batch, const at::TensorOptions& options);
  /// True when there is nothing to embed (no classes, no attributes).
  bool empty() const { return num_classes_ == 0 && attr_dim_ == 0; }

 private:
  int64_t num_classes_, attr_dim_, dim_;
  torch::nn::Embedding classes_{nullptr};
  torch::nn::Linear attr_{nullptr};
  Tensor null_attr_;
};
TORCH_MODULE(ConditionEmbedder);

/// Marks each row for the null condition with probability p_uncond (training for classifier-free guidance).
FLOWLAB_API Condition drop_condition(const Condition& cond, int64_t batch, double p_uncond,
                                     const at::TensorOptions& options);

/// Classifier-free guidance: v = v_uncond + w (v_cond - v_uncond). w = 0 returns the unconditional field and
/// w = 1 the conditional one exactly (one network call each); otherwise both are evaluated. `cond` must have
/// rows for the batch the solver integrates.
FLOWLAB_API VelocityField guided_field(std::shared_ptr<Architecture> model, Condition cond, double w);

}  // namespace flowlab
