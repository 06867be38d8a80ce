// Sample-quality metrics comparing generated samples with reference data.
#pragma once

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

class FLOWLAB_API Metric : public Plugin {
 public:
  /// The metric between generated samples [N, ...] and reference data [M, ...]; lower is better unless
  /// higher_is_better().
  virtual double compute(const Tensor& samples, const Tensor& reference) const = 0;
  virtual bool higher_is_better() const { return false; }
};

namespace kinds {
using metric = Metric;
}

}  // namespace flowlab
