// Base distributions for x0. Any dataset serves too, through noise_from_dataset().
#pragma once

#include <memory>

#include "flowlab/dataset.hpp"

namespace flowlab {

/// A base distribution for x0: the `noise` plugin kind.
class FLOWLAB_API Noise : public Plugin {
 public:
  /// Called once with a batch of data before training, for noises that adapt to it (`matched`).
  virtual void fit(const Tensor& data) { (void)data; }
  /// A tensor of the given shape [B, ...] of base samples.
  virtual Tensor sample(at::IntArrayRef shape, const at::TensorOptions& options) const = 0;
  /// log p_0(x) [B] in nats for x [B, ...], for likelihoods (metric/nll). Undefined (the default) when the noise has
  /// no density flowlab can evaluate.
  virtual Tensor log_prob(const Tensor& x) const {
    (void)x;
    return Tensor();
  }
};

/// A dataset as the base distribution (the textbook's logo-shaped base, data-to-data flows).
/// sample() checks that the requested event shape is the dataset's.
FLOWLAB_API std::shared_ptr<Noise> noise_from_dataset(std::shared_ptr<const Dataset> dataset);

namespace kinds {
/// The base class of the `noise` plugin kind (FLOWLAB_PLUGIN(noise, ...)).
using noise = Noise;
}  // namespace kinds

}  // namespace flowlab
