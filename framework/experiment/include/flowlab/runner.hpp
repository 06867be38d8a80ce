// The runner: schedules an experiment's trials on device slots, each trial in its own child process (a crash
// or a throw fails that trial only), merges results after every trial, resumes and retries, stops cleanly on
// SIGINT/SIGTERM and enforces the per-trial time limit.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/worker.hpp"

namespace flowlab {

struct RunOptions {
  bool dry_run = false;
  bool resume = false;        ///< skip trials whose result file exists (completed or diverged) for their configuration
  bool retry_failed = false;  ///< with resume: rerun failed and timed-out trials too
  bool fail_fast = false;     ///< stop at the first failed trial
  std::vector<std::string> devices;  ///< overrides the YAML's devices when non-empty
  int64_t workers = 0;               ///< workers per device; 0: the YAML's workers_per_device
  int64_t threads = 0;               ///< threads per worker; 0: the YAML's threads
  std::string out;                   ///< overrides the YAML's output when non-empty
  std::string self;                  ///< path of the flowlab executable, for the child processes
  std::vector<std::string> plugin_paths;  ///< passed on to the children
};

/// Runs (or, with dry_run, lists) the experiment. Returns 0 when every trial completed; 1 when any failed, diverged,
/// timed out or was left unfinished; 128 + the signal (130, 143) when SIGINT or SIGTERM stopped the run. Progress
/// goes to `log`, one flushed line at a time. Throws flowlab::Error before starting any trial when the devices cannot
/// be used or the output exists without `resume`.
FLOWLAB_API int run_experiment(const Experiment& experiment, const RunOptions& options, std::ostream& log);

/// The device slots for `devices` ("auto": every GPU in `visible`, else cpu) and `workers` per device. Throws
/// flowlab::Error when a cuda:N is asked for that `visible` does not have ("cuda:0 requested, but this LibTorch has
/// no CUDA", "cuda:1 requested, but only 1 GPU is visible").
FLOWLAB_API std::vector<std::string> device_slots(const std::vector<std::string>& devices, int64_t workers,
                                                  const worker::DeviceInfo& visible);

/// Runs `flowlab _devices` (`self`) in a child process and returns what it saw: the runner never touches CUDA itself.
FLOWLAB_API worker::DeviceInfo probe_devices(const std::string& self);

/// What cannot work with the files of a run writing `output`: throws flowlab::Error when two trials of `experiment`
/// would share a result file (their ids agree on the file-name prefix and on the hash), or when the output's file
/// name is too long for the names derived from it. Called by `validate` and before a run.
FLOWLAB_API void check_trial_files(const Experiment& experiment, const std::string& output);

/// "1 trial", "2 trials", "0 trials": `n` and `noun`, plural for every n but 1.
FLOWLAB_API std::string counted(int64_t n, const std::string& noun);

}  // namespace flowlab
