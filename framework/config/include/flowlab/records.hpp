// The records of a finished trial: its training log and evaluation rows. Plain data, shared by the engine that
// fills them, the results code that writes them to HDF5 and the runner that reports them.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "flowlab/export.hpp"

namespace flowlab {

/// A training stage: round 0 (ordinary training), a reflow round or the distillation.
enum class Stage { base, reflow, distill };

/// The stage's name, as results files store it: "base", "reflow" or "distill".
FLOWLAB_API std::string stage_name(Stage stage);
/// The stage named `name` (stage_name's inverse). Throws flowlab::Error for any other name.
FLOWLAB_API Stage stage_from_name(const std::string& name);

/// A float32 array in row-major order, for what the results file stores (samples, trajectories, weights).
struct Array {
  std::vector<int64_t> shape;
  std::vector<float> values;
  bool empty() const { return values.empty(); }
};

struct TrainLog {
  std::vector<int64_t> round;  ///< the training stage of each entry (RoundRecord::round); steps restart per stage
  std::vector<int64_t> step;
  std::vector<double> loss, grad_norm, lr;
};

/// One evaluation row: a solver run on the trial's fixed noise. rtol/atol are NaN for fixed-step solvers.
struct EvalRow {
  int64_t round = 0;  ///< the training stage evaluated (RoundRecord::round)
  /// The step of that stage whose weights were evaluated: the stage's steps for the final evaluation, a multiple of
  /// eval.every below them for an evaluation during training.
  int64_t train_step = 0;
  std::string solver;
  std::string label;  ///< EvalRun::label, unique in the trial
  int64_t steps = 0;
  double rtol = 0, atol = 0;
  int64_t nfe = 0;            ///< field evaluations, as the solver sees them
  int64_t network_calls = 0;  ///< network forward passes: 2 per field evaluation under guidance w not in {0, 1}
  int64_t accepted = 0, rejected = 0;
  double seconds = 0, samples_per_s = 0;  ///< the solve alone (not the straightness and trajectory records)
  std::vector<double> metrics;            ///< in the order of EvalConfig::metrics; NaN when the row failed
  std::string error;  ///< why this row failed (the solver threw or produced NaN/Inf); "" when it did not
  /// Straightness E int_0^1 |(x1_hat - x0) - v(x_t, t)|^2 dt along the solver's own states (trapezoid rule).
  double straightness = 0;
  std::vector<double> times;       ///< the solver's states' times: the grid, or t0 and the accepted steps
  std::vector<double> mean_speed;  ///< mean |v(x, t)| over the samples at each of `times`
  Array samples;                   ///< the first store_samples generated samples
  Array trajectory;                ///< [K, T+1, ...] for store_trajectories = K, at `times`
};

/// One fixed column of a trial's eval table (/trials/<id>/eval in the results file): its name and the EvalRow member
/// it holds. The metrics follow as columns of their own, one per metric.
struct EvalColumn {
  std::string name;
  std::variant<int64_t EvalRow::*, double EvalRow::*, std::string EvalRow::*> member;
  size_t width = 0;  ///< text columns: their least width in bytes (wider when a value needs it)
};

/// The eval table's fixed columns, in file order: the one list the results writer, the report's reader and
/// tests/check_hdf5_layout.py (through tests/test_results_columns.cpp) follow. A new column is a member of EvalRow, a
/// line here, and the engine setting it.
FLOWLAB_API const std::vector<EvalColumn>& eval_columns();

/// One training stage of a trial: round 0 (ordinary training), a reflow round or the distillation.
struct RoundRecord {
  int64_t round = 0;          ///< 0, 1, ..., reflow.rounds, then reflow.rounds + 1 for the distillation
  Stage stage = Stage::base;  ///< base, reflow or distill
  double mix = 0;             ///< share of teacher pairs in its batches (reflow rounds; 1 for distill, 0 for base)
  int64_t steps = 0;          ///< training steps
  double train_seconds = 0;   ///< training alone (this process's share when the stage was resumed)
  double pair_seconds = 0;    ///< generating its teacher pairs
  int64_t teacher_nfe = 0;    ///< field evaluations per pair (the teacher solver's)
  std::string teacher;        ///< the teacher solver's label ("" for round 0)
  /// The stage's network work in forward passes of one row: training (steps x batch x Objective::calls_per_row;
  /// distillation: steps x batch x distill.steps) plus its teacher pairs (pairs x teacher_nfe).
  double train_calls = 0;
  Array pairs_x0, pairs_x1;  ///< its teacher pairs (x0, x1_hat); empty for round 0
};

/// train.phema's snapshots of a trial's final stage (the stage whose weights are stored): the step and relative std
/// of each, and their values [K, P], each row the trained parameters (`parameters`, in order) flattened.
struct PhemaRecord {
  std::vector<int64_t> steps;
  std::vector<double> stds;
  std::vector<std::string> parameters;  ///< the state-dict keys of the parameters a row holds, in its order
  Array values;
  bool empty() const { return steps.empty(); }
};

struct TrialResult {
  std::string id;
  std::string status;  ///< completed, diverged or failed
  std::string error;   ///< why it diverged or failed
  int64_t diverged_step = -1;
  int64_t seed = 0;
  std::string device;
  std::string precision = "fp32";  ///< the precision that ran (train.precision, or fp32 where it does not apply)
  std::string cuda_graph = "off";  ///< "on" when the fixed-step eval runs were replayed from CUDA graphs
  double train_seconds = 0, eval_seconds = 0;
  double during_seconds = 0;  ///< the evaluations during training (eval.every), left out of train_seconds
  TrainLog train;
  /// The final evaluation's rows (every stage, in order), then those evaluated during training (eval.every), by
  /// stage and step.
  std::vector<EvalRow> eval;
  std::vector<RoundRecord> rounds;        ///< the training stages, in order (one, round 0, without reflow or distill)
  std::vector<std::string> metric_names;  ///< EvalConfig::metric_labels
  std::vector<std::string> metric_features;  ///< per metric: the feature extractor applied ("raw", ...)
  int64_t failed_rows = 0;                   ///< eval rows with an error
  std::string reference_source;              ///< what the reference samples were drawn from (Dataset::reference_source)
  int64_t reference_count = 0;               ///< how many reference samples the metrics used
  Array x0;                                  ///< the noise of the first store_samples samples (shared by all rows)
  Array reference;                           ///< the first store_samples reference samples
  std::vector<std::pair<std::string, Array>> weights;  ///< evaluated weights (EMA where used), by state-dict key
  std::string architecture;                            ///< the architecture plugin's name
  std::vector<std::pair<std::string, std::string>> architecture_params;  ///< its resolved parameters, as text
  std::vector<int64_t> event_shape;                                      ///< shape of one sample
  std::string condition = "none";                                        ///< what the model is conditioned on
  PhemaRecord phema;  ///< post-hoc EMA snapshots (train.phema); empty without
};

}  // namespace flowlab
