// The worker protocol, in one place: how the runner starts `flowlab _trial` (arguments), what the worker prints
// (PROGRESS lines on stdout, and a RESUME line when it continues from a checkpoint), how it stops (signals) and exits
// (exit codes) and the `flowlab _devices` probe; where trial results and checkpoints live (file names) is in
// trial_files.hpp. The runner (runner.cpp) and the worker (run_worker, called by the CLI) both use only what is
// declared here and there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowlab/engine.hpp"
#include "flowlab/export.hpp"

namespace flowlab {

class Registry;

namespace worker {

/// Exit codes of `flowlab _trial`.
constexpr int kExitDone = 0;           ///< a result was written (completed or diverged)
constexpr int kExitTrialFailed = 3;    ///< the trial threw; a `failed` result with the message was written
constexpr int kExitInterrupted = 4;    ///< stopped by SIGTERM, SIGINT or SIGUSR1 during training: the checkpoint (when
                                       ///< checkpoints are on) holds the state; no result was written
constexpr int kExitWriteFailed = 5;    ///< a full or failing disk (ENOSPC, EIO, ...) while writing a checkpoint or the
                                       ///< result: no result was written; its WRITE_ERROR line says which file
constexpr int kExitCannotStart = 126;  ///< the runner died before the worker was set up
constexpr int kExitExecFailed = 127;   ///< exec of the flowlab executable failed

/// How long the runner waits for a worker to stop after SIGTERM (on Ctrl-C, SIGTERM or a trial's time limit) before
/// it sends SIGKILL.
constexpr int kStopGraceSeconds = 10;

/// One trial to run in a worker process.
struct Job {
  std::string self;  ///< the flowlab executable
  std::vector<std::string> plugin_paths;
  std::string experiment_file;  ///< the whole experiment: read only when there is no snapshot
  std::string snapshot;         ///< the trial's snapshot (trial_snapshot_path): all the worker reads when set
  std::string id;               ///< trial id
  std::string config_hash;      ///< the hash the runner computed for this trial ("" : not checked)
  std::string device = "cpu";   ///< as the worker sees it ("cuda:0" once pinned with CUDA_VISIBLE_DEVICES)
  int64_t threads = 1;
  std::string out;          ///< the trial's result file
  std::string checkpoint;   ///< the trial's checkpoint file ("" for none)
  std::string tensorboard;  ///< the experiment's log.tensorboard: the trial logs to its run there ("" for none)
};

/// argv for the worker process (argv[0] is job.self).
FLOWLAB_API std::vector<std::string> command_line(const Job& job);

/// "PROGRESS <step> <total> <loss> <grad_norm> <lr>": the line a worker prints at every logged training step
/// (every log_every steps and the last). `step` counts the steps done, so the log entry is step - 1. Numbers are
/// written so that they read back exactly.
FLOWLAB_API std::string progress_line(const Progress& p);
/// Parses a progress line; false for any other line.
FLOWLAB_API bool parse_progress(const std::string& line, Progress& p);
/// "RESUME <step> <total>": printed once, before training, by a worker that continues its trial from a checkpoint
/// at `step` (of `total` steps); the runner logs it ("<id> resumes from its checkpoint at step 120/400").
FLOWLAB_API std::string resume_line(int64_t step, int64_t total);
/// Parses a resume line; false for any other line.
FLOWLAB_API bool parse_resume(const std::string& line, int64_t& step, int64_t& total);

/// The worker side: loads its trial's snapshot (or, without one, the whole experiment), runs trial job.id on job.device
/// with job.threads threads, writes its result to job.out (a `failed` result with the message when the trial throws)
/// and prints progress lines on stdout. SIGTERM, SIGINT and SIGUSR1 ask it to stop: training saves its checkpoint and
/// the worker returns kExitInterrupted without writing a result. Returns the exit code.
FLOWLAB_API int run_worker(const Job& job, const Registry& registry);

/// "WRITE_ERROR <message>": the worker's last line before it exits kExitWriteFailed.
FLOWLAB_API std::string write_error_line(const std::string& message);
/// Reads a WRITE_ERROR line into `message`; false for any other line.
FLOWLAB_API bool parse_write_error(const std::string& line, std::string& message);

/// What `flowlab _devices` reports: whether this LibTorch was built with CUDA, and how many GPUs it sees.
struct DeviceInfo {
  bool cuda = false;
  int64_t gpus = 0;
};
/// argv of the probe (argv[0] is `self`); it prints one devices line. The runner runs it once per sweep instead of
/// touching CUDA itself, so that it never initialises CUDA before forking workers.
FLOWLAB_API std::vector<std::string> devices_command_line(const std::string& self);
/// "DEVICES cuda=<0|1> gpus=<N>".
FLOWLAB_API std::string devices_line(const DeviceInfo& info);
FLOWLAB_API bool parse_devices(const std::string& line, DeviceInfo& info);
/// The probe side (`flowlab _devices`): prints this process's devices line. Returns the exit code.
/// For tests only, FLOWLAB_TEST_FAKE_GPUS=N (0 < N < 1000) makes it report a CUDA build with N GPUs, without touching
/// CUDA; with CUDA_VISIBLE_DEVICES set it reports what CUDA would: the entries before the first one that is not a
/// distinct index below N.
FLOWLAB_API int run_devices();
/// What the probe reports for FLOWLAB_TEST_FAKE_GPUS=`fake_gpus` and CUDA_VISIBLE_DEVICES=`cuda_visible_devices`
/// (nullptr: not set). Throws flowlab::Error when `fake_gpus` is not a number from 1 to 999.
FLOWLAB_API DeviceInfo fake_devices(const std::string& fake_gpus, const char* cuda_visible_devices);

}  // namespace worker
}  // namespace flowlab
