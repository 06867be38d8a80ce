// Experiment files: YAML -> validated experiment -> expanded trials (grid x zip x seeds).
#pragma once

#include <map>
#include <array>
#include <string>
#include <vector>

#include "flowlab/errors.hpp"
#include "flowlab/params.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

class Registry;

/// A YAML error: "FILE:LINE:COL: KEY.PATH: what was expected". Line and column are 1-based.
class FLOWLAB_API ConfigError : public Error {
 public:
  using Error::Error;
  ~ConfigError() override;
};

/// A plugin chosen in the experiment: its name and its resolved parameters (defaults filled in).
struct PluginChoice {
  std::string kind, name, version;
  Params params;
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 256;
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double weight_decay = 0.0;
  int64_t warmup = 0;
  std::string schedule = "cosine";  ///< cosine or constant, after the linear warmup
  double ema = 0.999;               ///< 0 disables the EMA
  double grad_clip = 0.0;           ///< 0 disables clipping
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;    ///< save a checkpoint every N steps; 0: none
  double p_uncond = 0.1;           ///< probability of training a row with the null condition (conditioned models)
  std::string precision = "fp32";  ///< fp32, bf16 (autocast) or tf32 (CUDA's TF32 mode): precision.hpp
  /// Post-hoc EMA (train.phema: {stds, snapshots}): EDM2's power-function EMAs of these relative stds, each kept
  /// `phema_snapshots` times over the stage, evenly (engine/phema.hpp); empty: none.
  std::vector<double> phema_stds;
  int64_t phema_snapshots = 0;
};

/// The largest relative std of a power-function EMA profile, 1/sqrt(12) (the uniform average over all of training):
/// train.phema.stds and eval.ema_std lie in (0, kPhemaMaxStd).
constexpr double kPhemaMaxStd = 0.28867513459481287;

/// One evaluation row: a solver with its parameters and, for fixed-step solvers, a step count.
struct EvalRun {
  PluginChoice solver;
  int64_t steps = 0;  ///< 0 for adaptive solvers
  /// Unique within the trial: the solver and its steps (fixed-step) or rtol (adaptive), then every other parameter
  /// that differs between runs of the same solver, then the grid: "rk4:steps=10", "dopri5:rtol=1e-05,atol=1e-06",
  /// "euler:steps=4,grid=edm".
  std::string label;
  /// The time grid (`grid:`, a time_grid plugin) of a fixed-step or multistep run; name empty: the solver's own
  /// uniform steps.
  PluginChoice grid;
};

struct EvalConfig {
  int64_t samples = 1000;
  bool use_ema = true;
  double guidance = 1.0;  ///< classifier-free guidance weight w (conditioned models): v_u + w (v_c - v_u)
  /// How w depends on t (eval.guidance as a map): constant; interval (w on guidance_interval, the plain conditional
  /// field, one network call, outside it; Kynkaanniemi et al. 2024); up (w(t) = 1 + (w - 1) t) or down
  /// (1 + (w - 1)(1 - t)).
  std::string guidance_schedule = "constant";
  std::array<double, 2> guidance_interval = {0.0, 1.0};
  /// Autoguidance (eval.guidance.guide: {step: N, architecture: A}): v = v_guide + w (v - v_guide). The guide is
  /// this trial's model after N steps of round 0 (its EMA where eval.use_ema), or, with `architecture`, a second
  /// network of that architecture trained beside round 0 on the same batches for N steps (train.steps when N is not
  /// given); kept in checkpoints. -1: off.
  int64_t guide_step = -1;
  /// The guide's own architecture (eval.guidance.guide.architecture); name empty: the model's own weights guide.
  PluginChoice guide_architecture;
  std::vector<EvalRun> runs;
  std::vector<PluginChoice> metrics;
  /// Unique names of the metrics: the name, then "[k=v,...]" with the parameters that differ when one metric is
  /// listed more than once ("frechet[features=builtin:digits]").
  std::vector<std::string> metric_labels;
  int64_t store_samples = -1;  ///< generated samples kept per eval run; -1: all (<= 10000) for vectors, 64 for images
  int64_t store_trajectories = 0;  ///< trajectories kept per eval run (the first K samples)
  /// On a GPU, each fixed-step solver run is captured once as a CUDA graph and replayed (the same samples as the
  /// eager loop); adaptive runs and CPU devices sample eagerly, and the trial records what ran.
  bool cuda_graph = false;
  /// Evaluate during training: every `every` training steps of each stage (round 0, each reflow round, the
  /// distillation), at steps every, 2 every, ... below the stage's last, which the final evaluation covers. 0: only
  /// the final evaluation. Same noise, reference and metrics as the final evaluation, on the weights it would use.
  int64_t every = 0;
  /// The runs evaluated during training (eval.during), as indices into `runs`, in order; empty: every run.
  std::vector<size_t> during;
  /// eval.as_path: sample the model as if it had been trained on this affine path (schedule_transform.hpp); name
  /// empty: on its own path. Every run's label then ends in ",as_path=NAME".
  PluginChoice as_path;
  /// eval.ema_std: post-hoc EMA lengths (relative stds) reconstructed from train.phema's snapshots at each stage's
  /// end; every run is evaluated on each, after the stage's ordinary rows, labelled ",ema_std=S". A sweep axis over
  /// eval.ema_std is folded into this list: one trial, trained once.
  std::vector<double> ema_stds;
};

/// Reflow rounds (Liu et al.'s rectification with the texts' EMA teacher and mixing schedule): round 0 is ordinary
/// training; round r >= 1 draws `pairs` noise samples, integrates round r-1's EMA model with `teacher` to get
/// synthetic endpoints x1_hat, and trains on batches that take each row from those pairs with probability mix(r)
/// and from (noise, data) otherwise.
struct ReflowConfig {
  int64_t rounds = 0;                     ///< reflow rounds after round 0 (0: none)
  int64_t pairs = 4096;                   ///< teacher pairs generated per round
  EvalRun teacher;                        ///< the teacher's solver (and steps): rk4 with 20 steps by default
  double mix_start = 0.4, mix_end = 0.9;  ///< p for round 1 and round `rounds`, linear in between
  std::string init = "warm";              ///< warm: start round r from round r-1's EMA weights; fresh: from a new init
  TrainConfig train;                      ///< the training of rounds >= 1: `train` with reflow.train's overrides
  /// The share of teacher pairs in round r >= 1's batches.
  double mix(int64_t round) const {
    return rounds <= 1 ? mix_start : mix_start + (mix_end - mix_start) * double(round - 1) / double(rounds - 1);
  }
};

/// Distillation (InstaFlow's reconstruction objective): a student initialised from the last round's EMA model is
/// trained so that `steps` Euler steps of it map x0 to the teacher's x1_hat, on pairs from the last round's model.
struct DistillConfig {
  bool enabled = false;
  int64_t steps = 1;        ///< the student's Euler steps
  std::string loss = "l2";  ///< l2 (mean squared error) or l1 (mean absolute error)
  int64_t pairs = 4096;     ///< teacher pairs (x0, x1_hat) to distill from
  TrainConfig train;        ///< `train` with distill.train's overrides
};

/// Labels for `choices` of one kind: each name, followed by `sep_open` k=v,... `sep_close` for the parameters
/// that differ among choices of the same name; `always` lists parameters shown whenever present.
FLOWLAB_API std::vector<std::string> choice_labels(const std::vector<PluginChoice>& choices,
                                                   const std::vector<std::string>& always, const std::string& sep_open,
                                                   const std::string& sep_close);

/// Everything one trial needs, fully resolved.
struct TrialConfig {
  std::string id;  ///< stable and readable: the swept values and the seed
  int64_t seed = 0;
  std::vector<std::pair<std::string, std::string>> swept;  ///< dotted key -> value, in sweep order
  PluginChoice data, path, weighting, time_sampler, noise, architecture;
  PluginChoice coupling;           ///< pairs noise and data within each training batch (default independent)
  PluginChoice noise_dataset;      ///< set when model.noise names a dataset: x0 is drawn from it instead of `noise`
  PluginChoice objective;          ///< the target and loss of training (default flow_matching)
  std::string condition = "none";  ///< none, label, attr or both: what the model is conditioned on
  /// The coupling pairs noise with the previous round's samples only (Coupling::needs_teacher(): coupling/reflow):
  /// each reflow round trains on teacher pairs alone (mix 1).
  bool teacher_coupling = false;
  TrainConfig train;
  EvalConfig eval;
  ReflowConfig reflow;
  DistillConfig distill;
  /// Training steps over every stage: round 0, the reflow rounds and the distillation.
  int64_t total_steps() const {
    return train.steps + reflow.rounds * reflow.train.steps + (distill.enabled ? distill.train.steps : 0);
  }
  std::string resolved_yaml;  ///< this trial's configuration, every plugin parameter included
  std::string source_yaml;    ///< this trial's own document: the experiment with its sweep values applied, no sweep
};

/// The training stages of a trial, in order: round 0, the reflow rounds, the distillation; each with its round,
/// stage, mix, steps and teacher filled in (the rest is what training measures).
FLOWLAB_API std::vector<RoundRecord> plan_stages(const TrialConfig& trial);

/// The training configuration of `stage` in `trial`: train, reflow.train or distill.train.
FLOWLAB_API const TrainConfig& train_config(const TrialConfig& trial, Stage stage);

/// The top-level `limits:` section: bounds that turn a typo into an error before anything runs.
struct ExperimentLimits {
  int64_t trials = 100000;  ///< the most trials a sweep may expand to (counted before any is built)
  double pairs_gb = 32;     ///< the most memory one trial's reflow or distillation pairs may take, in GB
};

struct Experiment {
  std::string file, text;  ///< the YAML file and its text
  ExperimentLimits limits;
  size_t plugins_checked = 0;  ///< distinct plugin configurations created to validate them (each once)
  std::string name, output;
  std::vector<std::string> devices;  ///< "auto", or explicit names such as "cpu", "cuda:0"
  int64_t workers_per_device = 1;
  int64_t threads = 1;
  double max_trial_seconds = 0;  ///< wall-clock limit of one trial (training + evaluation); 0: none
  /// log.tensorboard: the directory of the trials' TensorBoard runs (run/tensorboard_log.hpp); "": none
  std::string tensorboard;
  std::vector<TrialConfig> trials;
};

/// Reads, validates (schema and every plugin's parameters, for every trial) and expands an experiment file.
/// Throws ConfigError naming file:line:col, the key path and what was expected, with the nearest valid name.
/// Each distinct plugin configuration is created once (datasets included: their files are read), however many
/// trials share it, and the trial count is checked against limits.trials before any trial is built.
/// `documents`: also write each trial's resolved_yaml and source_yaml; `flowlab validate`, which needs neither,
/// skips them.
FLOWLAB_API Experiment load_experiment(const std::string& file, const Registry& registry, bool documents = true);
/// load_experiment on `text`, the contents of `file` (an experiment kept in a results file, for example); errors
/// name `file`.
FLOWLAB_API Experiment load_experiment_text(const std::string& file, const std::string& text, const Registry& registry,
                                            bool documents = true);

/// The snapshot of one trial that the runner hands to a worker (`OUT.trials/<stem>.trial.yaml`): its id, seed,
/// swept values and its own document (TrialConfig::source_yaml), as YAML. A worker reads it instead of the whole
/// experiment, so its start-up does not grow with the sweep.
FLOWLAB_API std::string trial_snapshot(const TrialConfig& trial);

/// Reads a snapshot written from trial_snapshot(): validates that one trial (its plugins and parameters) and returns
/// it as load_experiment() would have (same resolved_yaml, hence the same config_hash). Throws ConfigError.
FLOWLAB_API TrialConfig load_trial_snapshot(const std::string& file, const Registry& registry);

/// The closest of `choices` to `word` by edit distance, or "" when none is close.
FLOWLAB_API std::string nearest(const std::string& word, const std::vector<std::string>& choices);

/// The keys an experiment file may hold, per section ("" for the top level, "eval.guidance", "reflow.mix", ...):
/// the lists the reader checks keys against. tests/test_config_keys.cpp probes each one, so that a key added here
/// without a place in the resolved configuration (and so in config_hash) fails a test.
FLOWLAB_API const std::vector<std::pair<std::string, std::vector<std::string>>>& config_sections();

/// "1 trial", "2 trials", "0 trials": `n` and `noun`, plural for every n but 1.
FLOWLAB_API std::string counted(int64_t n, const std::string& noun);

/// The hash of a trial's resolved configuration (TrialConfig::resolved_yaml): 16 hex digits of its 64-bit FNV-1a.
/// Stored as the `config_hash` attribute of each trial and in checkpoint names; --resume reruns a trial whose
/// result was written with another hash.
FLOWLAB_API std::string config_hash(const std::string& resolved_yaml);

}  // namespace flowlab
