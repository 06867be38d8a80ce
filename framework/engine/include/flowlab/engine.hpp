// The engine: trains one trial and evaluates it. It knows nothing of processes, queues or files.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

class Registry;

/// What the engine reports every log_every steps (and at the last step).
struct Progress {
  int64_t step = 0, total = 0;  ///< steps done, steps in all
  double loss = 0, grad_norm = 0, lr = 0;
};
using ProgressFn = std::function<void(const Progress&)>;
/// Asked between training steps; true stops training: the engine saves a checkpoint (when checkpoints are on) and
/// throws Interrupted.
using StopFn = std::function<bool()>;

/// Thrown by run_trial when `should_stop` asked it to stop; the checkpoint (if any) holds the state at `step`.
class FLOWLAB_API Interrupted : public Error {
 public:
  Interrupted(int64_t step, TrainLog log);
  ~Interrupted() override;
  int64_t step() const { return step_; }
  const TrainLog& log() const { return log_; }

 private:
  int64_t step_;
  TrainLog log_;
};

/// The EMA decay at update n (0-based), with the standard warm-up: min(ema, (1 + n) / (10 + n)). Without it, an
/// EMA of 0.999 after 1000 steps would still hold 0.999^1000 = 37% of the random initialisation; with it, the
/// initialisation's share is prod_n (1 + n) / (10 + n) = 9! n! / (n + 9)! (4e-22 at n = 1000).
FLOWLAB_API double ema_decay(double ema, int64_t updates);

/// The step training continues from with the checkpoint at `path` (run_trial's `checkpoint`), counted over every
/// stage of `trial` (round 0, reflow rounds, distillation) as Progress counts it. Throws when it cannot be read.
FLOWLAB_API int64_t checkpoint_step(const std::string& path, const TrialConfig& trial);

/// Trains and evaluates one trial on `device` ("cpu", "cuda:0"). Divergence (NaN/Inf loss) ends training and is
/// reported in the result; any other error propagates.
/// With `checkpoint` set and train.checkpoint_every > 0, the model, EMA, optimizer, step, RNG state and the log so
/// far are saved there every N steps (atomically); if the file exists at the start, training continues from it,
/// bit for bit on CPU.
/// With eval.every, the runs of eval.during are evaluated every N steps of each stage, in a model of their own and
/// with torch's generators put back, so that training and the final rows are bit for bit those without it on CPU;
/// their rows follow the final ones in TrialResult::eval and are kept in checkpoints.
/// Whether run_trial pairs batches ahead on a helper thread (default on). With a coupling whose pair() draws no
/// random numbers (coupling/minibatch_ot), on CPU, each step draws the batch of the step two later (after its own
/// draws) and the helper pairs the batches drawn while the steps before them train. The results are the same bit
/// for bit either way (tests/test_couplings.cpp); off, the batches are drawn ahead as well and paired on the
/// calling thread.
FLOWLAB_API void set_pairing_ahead(bool on);

/// What a trial reports as it runs besides Progress, for loggers such as the worker's TensorBoard log
/// (run/tensorboard_log.hpp). Steps count over every stage, 0-based, as the TensorBoard log and Progress (step - 1)
/// count them. Either may be empty.
struct TrialHooks {
  /// Each evaluation row as it is made (eval.every's during training, then the final ones), with the step over every
  /// stage of the weights it evaluated (the stage's train_step plus the steps of the stages before it). A trial
  /// resumed from a checkpoint reports again the rows that the checkpoint holds at or after its step, so that a log
  /// which drops what it wrote from that step on still has them.
  std::function<void(int64_t step, const EvalRow& row)> evaluated;
  /// Before each checkpoint is written: whatever a logger holds up to here is to be handed to the system, since a
  /// trial resumed from that checkpoint logs only what comes after it.
  std::function<void()> checkpointing;
};

FLOWLAB_API TrialResult run_trial(const TrialConfig& trial, const Registry& registry, const std::string& device,
                                  const ProgressFn& progress = ProgressFn(), const std::string& checkpoint = "",
                                  const StopFn& should_stop = StopFn(), const TrialHooks& hooks = TrialHooks());

/// Post-hoc EMA after training (flowlab ema): builds `trial`'s model with its stored `weights` (by state-dict key, as
/// TrialResult::weights), puts the EMA of each of `stds` reconstructed from `phema` (TrialResult::phema) in place of
/// its trained parameters and evaluates every run of eval.runs as the final evaluation does for eval.ema_std: on
/// CPU the rows are those a trial with eval.ema_std listing `stds` has, bit for bit. Throws flowlab::Error when the
/// weights or snapshots are not this model's, or a std is outside (0, kPhemaMaxStd).
FLOWLAB_API TrialResult evaluate_posthoc_ema(const TrialConfig& trial, const Registry& registry,
                                             const std::string& device,
                                             const std::vector<std::pair<std::string, Array>>& weights,
                                             const PhemaRecord& phema, const std::vector<double>& stds);

}  // namespace flowlab
