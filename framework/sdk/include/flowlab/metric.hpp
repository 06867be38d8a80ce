// Quality metrics: of generated samples against reference data (Metric), or of the model itself on reference data
// (ModelMetric, such as the likelihood).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "flowlab/plugin.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// A quality metric of generated samples against reference data: the `metric` plugin kind.
class FLOWLAB_API Metric : public Plugin {
 public:
  /// The metric between generated samples [N, ...] and reference data [M, ...]; lower is better unless
  /// higher_is_better().
  virtual double compute(const Tensor& samples, const Tensor& reference) const = 0;
  /// True for metrics where larger values are better (none of the built-in ones).
  virtual bool higher_is_better() const { return false; }
  /// False for a metric that compares with reference statistics of its own (frechet's `stats`): the engine then
  /// neither featurises the reference for it nor hands it one (compute() gets an undefined tensor).
  virtual bool uses_reference() const { return true; }
};

/// What the engine hands a metric of the model: the trained field, the base density and a way to build solvers.
struct ModelAccess {
  VelocityField field;                                  ///< v(x, t), unguided, as the eval runs see it
  std::function<Tensor(const Tensor&)> noise_log_prob;  ///< log p_0(x) [B] of the trial's noise
  /// A solver plugin by name with parameters (the registry's errors for unknown names and parameters).
  std::function<std::shared_ptr<Solver>(const std::string& name, const Params& params)> make_solver;
  double quantization_step = 0;  ///< Dataset::quantization_step() of the trial's data
};

/// A metric computed from the model rather than from its samples: once per evaluated stage, on the held-out
/// reference data, and written to every eval row of that stage. compute() refuses; the engine calls compute_model().
class FLOWLAB_API ModelMetric : public Metric {
 public:
  double compute(const Tensor& samples, const Tensor& reference) const final;
  /// The metric of the model on reference data [M, ...].
  virtual double compute_model(const ModelAccess& model, const Tensor& reference) const = 0;
  /// What the value is, for the results file's metric_features (for example "nats, exact divergence").
  virtual std::string describe(const ModelAccess& model) const = 0;
};

namespace kinds {
/// The base class of the `metric` plugin kind (FLOWLAB_PLUGIN(metric, ...)).
using metric = Metric;
}  // namespace kinds

}  // namespace flowlab
