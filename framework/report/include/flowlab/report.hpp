// Reading a results file back (any state: finished, running or interrupted) and the quality-vs-steps table that
// `flowlab report` prints: rows solver x steps (the eval rows' labels), NFE, each metric as mean +- sample std over
// seeds, time per 1000 samples; grouped by the swept keys (and the reflow round); a "steps to quality" summary per
// group; with reflow rounds, the round comparison; with evaluations during training (eval.every), each metric
// against the training step.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "flowlab/errors.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

class Registry;

/// One trial as stored under /trials/<id>: attributes, training log and eval table (not the samples or weights).
struct StoredTrial {
  std::string id, status, error;
  int64_t seed = 0;
  std::vector<std::pair<std::string, std::string>> swept;  ///< the sweep:<key> attributes, in attribute order
  TrainLog train;
  std::vector<std::string> metric_names;  ///< the eval table's metric columns, in table order
  /// The final evaluation's rows of the eval table (metrics, no samples), in table order: the rows/NNN groups
  /// 000, 001, ... (the writer puts them first).
  std::vector<EvalRow> eval;
  /// The rows evaluated during training (eval.every: train_step below its stage's steps), in table order.
  std::vector<EvalRow> during;
  std::vector<RoundRecord> rounds;  ///< the rounds table (no pairs); empty in files written before it
};

/// A results file read back: root attributes, the trials it holds, and what the sweep expects but the file lacks.
struct FLOWLAB_API StoredResults {
  std::string path, experiment_name, experiment_file, experiment_yaml;
  std::vector<StoredTrial> trials;           ///< in file order
  std::vector<std::string> summary_columns;  ///< the /summary table's columns (sweep order of the swept keys)
  /// Ids the experiment's sweep expands to but /trials lacks (not run yet, interrupted, or lost in a merge).
  std::vector<std::string> missing;
  /// Why `missing` could not be computed ("" when it was): the sweep is re-expanded from experiment_yaml with the
  /// registry, which fails when a plugin the experiment names is not available.
  std::string missing_unknown;
  std::vector<std::string> swept_keys() const;            ///< every sweep:<key> seen, in first-seen order
  const StoredTrial& trial(const std::string& id) const;  ///< throws, listing the valid ids
};

/// Reads `path`. Throws flowlab::Error when it is not a flowlab results file ("... is not a flowlab results file:
/// ..."), or on an HDF5 error. With a registry, re-expands the sweep to find missing trials.
FLOWLAB_API StoredResults read_results(const std::string& path, const Registry* registry = nullptr);

/// A float32 dataset of any rank (e.g. "trials/<id>/rows/000/samples"); throws flowlab::Error naming it if absent.
FLOWLAB_API Array read_array(const std::string& file, const std::string& dataset);
/// Whether `object` (a group or dataset path) exists in `file`.
FLOWLAB_API bool has_object(const std::string& file, const std::string& object);

/// The evaluated model of a trial, as stored under weights/: enough to rebuild it through the registry.
struct StoredModel {
  std::string architecture, condition;
  std::vector<std::pair<std::string, std::string>> params;  ///< param:<name> -> value as text
  std::vector<int64_t> event_shape;
  std::vector<std::pair<std::string, Array>> weights;  ///< state-dict key -> tensor
  /// The trial's probability path (model.path of its config attribute) and its parameters as text; "" when the
  /// trial holds no config.
  std::string path;
  std::vector<std::pair<std::string, std::string>> path_params;
  /// The trial's training objective (model.objective of its config attribute; flow_matching when absent).
  std::string objective = "flow_matching";
};
FLOWLAB_API StoredModel read_model(const std::string& file, const std::string& trial_id);
/// The post-hoc EMA snapshots of a trial (/trials/<id>/phema, train.phema). Throws flowlab::Error naming the file
/// when the trial kept none.
FLOWLAB_API PhemaRecord read_phema(const std::string& file, const std::string& trial_id);

/// One row of the quality-vs-steps table: one eval label aggregated over the trials of a group.
struct ReportRow {
  std::string label, solver;
  int64_t steps = 0;  ///< 0 for adaptive
  double rtol = 0;    ///< NaN for fixed-step
  double atol = 0;
  int64_t n = 0;                  ///< rows without an error (the seeds averaged over)
  int64_t failed = 0;             ///< rows with an error, excluded from the means
  double nfe = 0;                 ///< mean over the n rows
  double seconds_per_1000 = 0;    ///< mean seconds per 1000 samples (1000 / samples_per_s)
  double straightness = 0;        ///< mean straightness along this run's states
  std::vector<double> mean, std;  ///< per reported metric; std is the sample std (n - 1), NaN for n < 2
};

/// One eval run's quality against the training step (eval.every), over the trials of a group: its rows evaluated
/// during training and, at the stage's last step, its final rows.
struct TrainingCurve {
  std::string label, solver;
  std::vector<int64_t> steps;                  ///< training steps of the stage, ascending; the last is the stage's end
  std::vector<int64_t> n;                      ///< rows averaged at each step (rows with an error are left out)
  std::vector<int64_t> failed;                 ///< rows with an error at each step
  std::vector<double> nfe;                     ///< mean NFE at each step (adaptive solvers' change with training)
  std::vector<std::vector<double>> mean, std;  ///< [metric][step]: mean and sample std (NaN for n < 2)
};

/// A row's run family: its label without the step count and the tolerances, "solver k=v ...": "euler",
/// "euler grid=edm", "adams_bashforth order=2", "euler_maruyama diffusion=sigma", "dopri5" for "dopri5:rtol=1e-05".
/// One curve in `flowlab plot`'s quality plots, one pick in steps to quality.
FLOWLAB_API std::string run_family(const ReportRow& row);

/// The "steps to quality" answer for one run family of a group.
struct QualityPick {
  std::string solver;         ///< the run family (run_family): "euler", "euler grid=edm"
  std::optional<size_t> row;  ///< index into ReportGroup::rows of the cheapest row within the threshold
  size_t best_row = 0;        ///< this solver's best row (when none is within)
};

struct ReportGroup {
  std::vector<std::pair<std::string, std::string>> key;  ///< the grouping key=value pairs (empty: one group)
  std::vector<std::string> trials;                       ///< the completed trials aggregated
  std::vector<ReportRow> rows;
  // Steps to quality, on the metric `quality_metric` (an index into Report::metrics).
  std::optional<size_t> reference_row;  ///< the best converged row; nullopt when no row has a value
  double threshold = 0;                 ///< reference mean * (1 + within)
  std::vector<QualityPick> picks;
  double train_seconds = 0;  ///< mean training cost of the group's trials (for a round: that round's, pairs included)
  int64_t train_steps = 0;   ///< training steps (of that round)
  double total_train_calls = 0;    ///< mean training work of the trials up to this round (RoundRecord::train_calls)
  double total_train_seconds = 0;  ///< mean training and pair seconds up to this round
  /// Quality during training: one curve per eval run evaluated during training (empty without eval.every).
  std::vector<TrainingCurve> curves;
};

/// One line of the round comparison (the training text's reflow table): a round of the reflow schedule.
struct RoundLine {
  std::string round;                              ///< "0", "1", ..., or "distill"
  std::optional<int64_t> euler_steps, rk4_steps;  ///< fewest steps within round 0's threshold (nullopt: none)
  double adaptive_nfe = 0;   ///< mean NFE of its most accurate adaptive run (dopri5 first, then rtol, atol)
  std::string adaptive_run;  ///< that run's label; empty: the round has no adaptive run
  double straightness = 0;   ///< of its most accurate run (the most NFE), mean over seeds
  std::string straightness_run;
  double one_step = 0;  ///< the quality metric of its cheapest run (fewest NFE)
  std::string one_step_run;
  double train_seconds = 0;  ///< the round's training (and pair generation) cost
  int64_t train_steps = 0;
};

/// The rounds of one group of trials compared on round 0's best converged value.
struct RoundComparison {
  std::vector<std::pair<std::string, std::string>> key;  ///< the grouping key without the round
  std::string reference;                                 ///< round 0's reference run
  double reference_value = 0, threshold = 0;
  std::vector<RoundLine> lines;
};

/// One training method (a group of the report) in the method comparison.
struct MethodLine {
  static constexpr std::array<int64_t, 3> kNfe = {1, 2, 4};
  std::vector<std::string> method;  ///< the group's values of MethodComparison::keys
  std::array<double, 3> at_nfe = {std::nan(""), std::nan(""), std::nan("")};  ///< best quality at 1, 2, 4 NFE
  double converged = std::nan("");  ///< the group's reference (converged) value
  std::string converged_run;
  std::optional<double> nfe_within;  ///< fewest NFE within `within` of the best converged method
  std::string within_run;
  double train_calls = 0;  ///< training work up to this stage, in forward passes of one row (RoundRecord::train_calls)
  double train_seconds = 0;  ///< training and pair generation up to this stage
};

/// The method comparison (swept model.objective): each line's quality at 1, 2 and 4 NFE and converged, its cost in
/// training, and the fewest NFE that come within `within` of the best converged line.
struct MethodComparison {
  std::vector<std::string> keys;  ///< the group keys whose values differ between lines
  std::string reference;          ///< the best converged line and its run
  double reference_value = std::nan(""), threshold = std::nan("");
  std::vector<MethodLine> lines;
};

struct ReportOptions {
  std::vector<std::string> by;       ///< group keys; empty: every swept key
  std::vector<std::string> metrics;  ///< metrics to show; empty: all; the first is the quality metric
  double within = 0.1;
  /// Print only the quality-during-training tables (csv: one flat table of them); an error when the file has none.
  bool during = false;
};

struct Report {
  std::vector<std::string> group_keys;
  std::vector<std::string> metrics;  ///< shown, in order; metrics[0] is the quality metric
  double within = 0.1;
  std::vector<ReportGroup> groups;
  std::vector<std::string> missing;  ///< from StoredResults
  std::string missing_unknown;
  std::vector<const StoredTrial*> not_completed;  ///< failed, diverged or timed-out trials
  size_t total = 0;                               ///< trials in the file
  /// With reflow rounds: group_keys ends with "round" (each round is a group) and this compares the rounds.
  std::vector<RoundComparison> rounds;
  /// When model.objective is swept: every group (method, and round of a method with rounds) on one line.
  std::optional<MethodComparison> methods;
  std::vector<StoredTrial> round_views;  ///< the per-round views of the trials the groups were built from
  bool has_curves = false;               ///< some group has evaluations during training
  bool during_only = false;              ///< ReportOptions::during
};

/// Builds the table. Throws flowlab::Error for an unknown --by key or metric, listing the valid ones.
FLOWLAB_API Report build_report(const StoredResults& results, const ReportOptions& options);

/// Writes the report as "term" (aligned columns), "md" (Markdown tables) or "csv" (one flat table: the group keys,
/// then label, solver, steps, rtol, atol, n, failed, nfe, <metric>_mean, <metric>_std ..., seconds_per_1000).
/// term and md end with the steps-to-quality summary and the missing or failed trials; for csv these go to `notes`.
/// With evaluations during training, term and md show each group's metrics against the training step after its
/// table; with Report::during_only, only those (csv: the group keys, then label, solver, train_step, n, failed,
/// nfe, <metric>_mean, <metric>_std ...).
FLOWLAB_API void write_report(const Report& report, const std::string& format, std::ostream& out, std::ostream& notes);

/// Only the steps-to-quality summary of each group (its title, then the lines write_report ends each group with):
/// what `flowlab run` prints at the end of a sweep.
FLOWLAB_API void write_quality_summary(const Report& report, std::ostream& out);

}  // namespace flowlab
