// ModelMetric's refusal of the sample-based interface.
#include "flowlab/metric.hpp"

#include "flowlab/errors.hpp"

namespace flowlab {

double ModelMetric::compute(const Tensor&, const Tensor&) const {
  throw Error("a metric of the model is computed from the model, not from samples: call compute_model()");
}

}  // namespace flowlab
