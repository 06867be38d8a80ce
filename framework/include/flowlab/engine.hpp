// The engine: trains one trial and evaluates it. It knows nothing of processes, queues or files.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flowlab/config.hpp"

namespace flowlab {

class Registry;

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

/// Called every log_every steps with (step, total steps, loss).
using ProgressFn = std::function<void(int64_t, int64_t, double)>;

/// Trains and evaluates one trial on `device` ("cpu", "cuda:0"). Divergence (NaN/Inf loss) ends training and is
/// reported in the result; any other error propagates.
/// With `checkpoint` set and train.checkpoint_every > 0, the model, EMA, optimizer, step, RNG state and the log so
/// far are saved there every N steps (atomically); if the file exists at the start, training continues from it,
/// bit for bit on CPU.
FLOWLAB_API TrialResult run_trial(const TrialConfig& trial, const Registry& registry, const std::string& device,
                                  const ProgressFn& progress = ProgressFn(), const std::string& checkpoint = "");

}  // namespace flowlab
