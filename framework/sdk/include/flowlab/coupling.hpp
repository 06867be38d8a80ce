// Couplings pair noise and data within a training batch before the path sees them (independent, minibatch OT,
// Sinkhorn; reflow pairs come from a teacher).
#pragma once

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// Which rows go together: the k-th training pair is (x0[i0[k]], x1[i1[k]]). Indices rather than tensors, so the
/// engine carries x1's labels and attributes along with it.
struct Pairing {
  ///@{
  Tensor i0, i1;  ///< int64 [B], on the CPU or the batch's device
  ///@}
};

/// How noise and data rows of a training batch are paired before the path sees them: the `coupling` kind.
class FLOWLAB_API Coupling : public Plugin {
 public:
  /// Pairs a noise batch x0 [B, ...] with a data batch x1 [B, ...]; may use torch's default generator.
  virtual Pairing pair(const Tensor& x0, const Tensor& x1) const = 0;
  /// True for couplings whose pairs come from a teacher (reflow): the engine pairs each noise sample with the
  /// previous round's sample from it, and pair() is not called. Such a coupling needs reflow rounds.
  virtual bool needs_teacher() const { return false; }
  /// True when pair() draws from torch's default generator (so the engine calls it in order, between the batch's
  /// draws and the time's). A coupling that draws nothing returns false, and the engine then computes the next
  /// batch's pairing on a helper thread while the current step trains (the same pairs, the same random stream);
  /// pair() must then touch no state that another thread uses.
  virtual bool draws_random() const { return true; }
  /// True for a coupling whose pair() returns (k, k) for every batch (coupling/independent): the engine then does
  /// not call it.
  virtual bool keeps_order() const { return false; }
};

namespace kinds {
/// The base class of the `coupling` plugin kind (FLOWLAB_PLUGIN(coupling, ...)).
using coupling = Coupling;
}  // namespace kinds

/// Squared Euclidean distances [B0, B1] (float64, CPU) between the flattened rows of x0 and x1: the cost of the OT
/// couplings.
FLOWLAB_API Tensor squared_euclidean_cost(const Tensor& x0, const Tensor& x1);

/// B pairs drawn with replacement from a plan [B0, B1] (rows, cols as int64 [B]), as TorchCFM's OTPlanSampler does.
FLOWLAB_API Pairing sample_pairs(const Tensor& plan, int64_t batch);

}  // namespace flowlab
