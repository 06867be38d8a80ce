// The records of a finished trial: its training log and evaluation rows. Plain data, shared by the engine that
// fills them, the results code that writes them to HDF5 and the runner that reports them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowlab {

struct TrainLog {
  std::vector<int64_t> step;
  std::vector<double> loss, grad_norm, lr;
};

/// One evaluation row: a solver run on the trial's fixed noise. rtol/atol are NaN for fixed-step solvers.
struct EvalRow {
  int64_t round = 0;  ///< reflow round (0 until reflow lands)
  std::string solver;
  int64_t steps = 0;
  double rtol = 0, atol = 0;
  int64_t nfe = 0, accepted = 0, rejected = 0;
  double seconds = 0, samples_per_s = 0;
  std::vector<double> metrics;  ///< in the order of EvalConfig::metrics
};

struct TrialResult {
  std::string id;
  std::string status;  ///< completed, diverged or failed
  std::string error;   ///< why it diverged or failed
  int64_t diverged_step = -1;
  int64_t seed = 0;
  std::string device;
  double train_seconds = 0, eval_seconds = 0;
  TrainLog train;
  std::vector<EvalRow> eval;
  std::vector<std::string> metric_names;
};

}  // namespace flowlab
