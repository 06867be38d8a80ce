// The TensorBoard log of one trial (the experiment's log.tensorboard): what its worker writes beside the results, so
// that `tensorboard --logdir DIR` follows a sweep while it trains. The event files themselves: flowlab/tensorboard.hpp.
#pragma once

#include <chrono>
#include <map>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/export.hpp"

namespace flowlab {

class TensorBoardWriter;

/// One trial's run directory, DIR/<trial file stem> (trial_files.hpp: the stem of its results file), written as the
/// trial goes:
/// - train/loss, train/grad_norm, train/lr at each logged step (the results' train log, log_every);
/// - eval/<label>/<metric>, eval/<label>/nfe and eval/<label>/straightness for each evaluation row, during training
///   (eval.every) and final, at the step of the weights it evaluated; rows that failed are left out;
/// - vs_nfe/<curve>/<metric> for each final row (round 0; vs_nfe/round<R>/<curve>/<metric> for a later stage's):
///   the metric at step = the row's NFE, so that each solver's quality-vs-NFE curve is a TensorBoard plot. <curve>
///   is the row's label without its steps, rtol and atol ("euler", "dopri5", "euler:grid=edm,ema_std=0.1");
/// - samples/<label>: the row's stored samples (eval.store_samples) as an image: a scatter plot of 2-D data, a grid
///   of up to 64 images of image data; other data have none.
/// Steps count over every stage (round 0, reflow rounds, distillation), from 0. Every file starts with a SessionLog
/// START at the step training starts from (0, or the checkpoint's on a resume), so TensorBoard drops what earlier
/// files of the trial hold from that step on: a trial run again or resumed after a kill shows each step once.
/// Events are handed to the system before each checkpoint is written (a resume from it must find them), after each
/// evaluation, at most a second apart while training, and at the end. Write errors throw flowlab::WriteError
/// (files.hpp) naming the file.
class FLOWLAB_API TensorBoardLog {
 public:
  TensorBoardLog(const std::string& dir, const TrialConfig& trial, int64_t start_step);
  ~TensorBoardLog();
  TensorBoardLog(const TensorBoardLog&) = delete;
  TensorBoardLog& operator=(const TensorBoardLog&) = delete;

  /// The directory of `trial`'s run under the experiment's log.tensorboard `dir`.
  static std::string run_dir(const std::string& dir, const std::string& trial_id);
  /// The quality-vs-NFE curve an evaluation row belongs to: its label without steps, rtol and atol.
  static std::string curve(const std::string& label);

  /// A logged training step (run_trial's ProgressFn): its step is p.step - 1.
  void progress(const Progress& p);
  /// An evaluation row (TrialHooks::evaluated).
  void evaluated(int64_t step, const EvalRow& row);
  /// Hands what was written to the system (before each checkpoint: TrialHooks::checkpointing; and at the end).
  void flush();
  /// The hooks that call evaluated() and flush(), for run_trial; valid while this log is.
  TrialHooks hooks();

 private:
  std::unique_ptr<TensorBoardWriter> writer_;
  std::vector<std::string> metric_labels_;
  std::map<int64_t, int64_t> stage_steps_;  // round -> its steps: a row at them is a final one
  std::chrono::steady_clock::time_point last_flush_;
};

}  // namespace flowlab
