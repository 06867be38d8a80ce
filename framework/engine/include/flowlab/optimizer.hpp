// AdamW (Loshchilov & Hutter 2019; the update of torch::optim::AdamW), the gradient norm with clipping, and the
// EMA of the weights, each over one flat buffer: the model's parameters become views of one tensor and their
// gradients views of another, so a training step's optimizer work is one pass over memory instead of several ops
// per parameter tensor.
#pragma once

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <vector>

#include "flowlab/errors.hpp"

namespace flowlab {

struct FlatAdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  ///< decoupled: p <- p (1 - lr wd) before the Adam update
};

class FlatEma;

/// AdamW on one flat buffer. The constructor moves every parameter that requires a gradient into one contiguous
/// buffer (values unchanged; the parameters become views of it) and gives each a gradient that is a view of a
/// second buffer, which backward() accumulates into. All parameters must share one dtype and device.
/// The update is torch::optim::AdamW's, operation for operation (amsgrad off); its difference: a parameter that got
/// no gradient in a step (one that the loss does not reach) sees a zero gradient instead of being skipped.
class FLOWLAB_API FlatAdamW {
 public:
  FlatAdamW(const std::vector<at::Tensor>& parameters, FlatAdamWOptions options);

  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  int64_t steps() const { return step_; }

  /// Zeroes the flat gradient (re-attaching any gradient that was replaced or reset).
  void zero_grad();
  /// The L2 norm of all gradients together: one pass over the float32 gradients, summed in double. With
  /// max_norm > 0 the gradients are then scaled by max_norm / (norm + 1e-6) when that is < 1 (clip_grad_norm_).
  /// Returns the norm before clipping.
  double clip_grad_norm(double max_norm);
  /// One AdamW step. With `ema`, also ema <- decay ema + (1 - decay) p on the new weights, in the same pass.
  void step(FlatEma* ema = nullptr, double decay = 0.0);

  /// The flat weights [N]: the parameters are views of it.
  const at::Tensor& flat_parameters();
  /// The flat gradients [N].
  const at::Tensor& flat_gradients() const { return grad_; }
  /// Copies `flat` [N] into the weights (e.g. the EMA for evaluation).
  void assign(const at::Tensor& flat);

  /// Step count and both moments, as flat tensors.
  void save(torch::serialize::OutputArchive& archive) const;
  /// The state that save() wrote. Call after loading the model's weights: loading replaces the parameters'
  /// storage, and this puts them back into the flat buffer with their loaded values.
  void load(torch::serialize::InputArchive& archive);

 private:
  void relink();  // parameters whose storage was replaced become views of the flat buffer again, values kept
  std::vector<at::Tensor> params_;
  std::vector<int64_t> offsets_;
  at::Tensor flat_, grad_, exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
  FlatAdamWOptions options_;
};

/// Exponential moving average of the flat weights of a FlatAdamW.
class FLOWLAB_API FlatEma {
 public:
  FlatEma() = default;
  /// Starts from a copy of `flat` (the optimizer's flat_parameters()).
  explicit FlatEma(const at::Tensor& flat) : ema_(flat.detach().clone()) {}
  bool defined() const { return ema_.defined(); }
  /// ema <- decay ema + (1 - decay) flat (FlatAdamW::step does this in its own pass when given the EMA).
  void update(const at::Tensor& flat, double decay);
  const at::Tensor& flat() const { return ema_; }
  at::Tensor& flat() { return ema_; }
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  at::Tensor ema_;
};

}  // namespace flowlab
