// Datasets: samples x1 of the target (or base) distribution, with optional labels and continuous attributes.
#pragma once

#include <vector>

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// A batch from a dataset. `label` [B] (int64) and `attr` [B, A] are undefined when the set has none.
struct Batch {
  Tensor x, label, attr;
};

class FLOWLAB_API Dataset : public Plugin {
 public:
  /// Shape of one sample, without the batch dimension ([2] for 2D toys, [1, 28, 28] for images).
  virtual std::vector<int64_t> event_shape() const = 0;
  /// n samples, drawn with torch's default generator.
  virtual Batch sample(int64_t n, const at::TensorOptions& options) const = 0;
  /// Number of classes for class conditioning; 0 when the set has no labels.
  virtual int64_t num_classes() const { return 0; }
  /// Width of the continuous attribute vector; 0 when there is none.
  virtual int64_t attr_dim() const { return 0; }
};

namespace kinds {
using dataset = Dataset;
}

}  // namespace flowlab
