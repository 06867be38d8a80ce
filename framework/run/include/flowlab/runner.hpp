// The runner: schedules an experiment's trials on device slots, each trial in its own child process (a crash
// or a throw fails that trial only), merges results after every trial, resumes and retries, stops cleanly on
// SIGINT/SIGTERM and enforces the per-trial time limit.
#pragma once

#include <functional>
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
  std::vector<std::string> devices;       ///< overrides the YAML's devices when non-empty
  int64_t workers = 0;                    ///< workers per device; 0: the YAML's workers_per_device
  int64_t threads = 0;                    ///< threads per worker; 0: the YAML's threads
  std::string out;                        ///< overrides the YAML's output when non-empty
  std::string self;                       ///< path of the flowlab executable, for the child processes
  std::vector<std::string> plugin_paths;  ///< passed on to the children
  /// Shard `shard_index` of `shard_count` (0-based; shard_count 0: no sharding): only the trials of shard_trials()
  /// run, each writing its own trial file; the experiment file is not written (flowlab merge builds it).
  int64_t shard_index = 0, shard_count = 0;
  /// The experiment file is rebuilt at most every `merge_every` seconds (and at least 4 times the last rebuild's
  /// duration apart, so that rebuilding never takes more than a fifth of the run), and at the end; 0: after every
  /// trial (the old behaviour, O(n^2) over a sweep).
  double merge_every = 5;
};

/// The trials of shard `index` of `count` (0 <= index < count) among `n` trials: every index i with
/// i % count == index, in order. The shards of one count cover each trial exactly once.
FLOWLAB_API std::vector<size_t> shard_trials(size_t n, int64_t index, int64_t count);

/// A shard: index (0-based) and count.
struct Shard {
  int64_t index = 0, count = 0;
};
/// Parses "I/N" (0 <= I < N). Throws flowlab::Error saying what is wrong ("--shard expects I/N with 0 <= I < N, as
/// in 0/4 (I is 0-based, like SLURM_ARRAY_TASK_ID): got '4/4'").
FLOWLAB_API Shard parse_shard(const std::string& text);
/// The shard of a Slurm array task, from `getenv` (SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN when set; the
/// count from SLURM_ARRAY_TASK_COUNT, else SLURM_ARRAY_TASK_MAX - MIN + 1); count 0 when SLURM_ARRAY_TASK_ID is not
/// set. Throws flowlab::Error when the variables are inconsistent (a sparse array: pass --shard).
FLOWLAB_API Shard shard_from_env(const std::function<const char*(const char*)>& getenv);

/// Runs (or, with dry_run, lists) the experiment. Returns 0 when every trial completed; 1 when any failed, diverged,
/// timed out or was left unfinished; 128 + the signal (130, 143) when SIGINT or SIGTERM stopped the run. Progress
/// goes to `log`, one flushed line at a time. Throws flowlab::Error before starting any trial when the devices cannot
/// be used or the output exists without `resume`.
FLOWLAB_API int run_experiment(const Experiment& experiment, const RunOptions& options, std::ostream& log);

/// The device slots for `devices` ("auto": every GPU in `visible`, else cpu) and `workers` per device. The rule: a
/// worker (slot) runs on exactly one device; each GPU gets exactly `workers` slots, so two workers share a GPU only
/// when `workers` (workers_per_device, --workers) is above 1. Throws flowlab::Error when a cuda:N is asked for that
/// `visible` does not have ("cuda:0 requested, but this LibTorch has no CUDA", "cuda:1 requested, but only 1 GPU is
/// visible"), or when a GPU is listed twice (cuda:0 twice, or auto and cuda:0).
FLOWLAB_API std::vector<std::string> device_slots(const std::vector<std::string>& devices, int64_t workers,
                                                  const worker::DeviceInfo& visible);

/// The CUDA_VISIBLE_DEVICES a worker on `slot` gets: "" for cpu (left as it is); for cuda:K the K-th entry of
/// `cuda_visible_devices` (this process's CUDA_VISIBLE_DEVICES: Slurm's gres, a user's selection) when that is set
/// and not empty, else K. The worker then sees that one GPU as cuda:0. Throws flowlab::Error when
/// `cuda_visible_devices` has fewer than K + 1 entries.
FLOWLAB_API std::string worker_cuda_visible_devices(const std::string& slot, const char* cuda_visible_devices);

/// Runs `flowlab _devices` (`self`) in a child process and returns what it saw: the runner never touches CUDA itself.
FLOWLAB_API worker::DeviceInfo probe_devices(const std::string& self);

/// What cannot work with the files of a run writing `output`: throws flowlab::Error when two trials of `experiment`
/// would share a result file (their ids agree on the file-name prefix and on the hash), or when the output's file
/// name is too long for the names derived from it. Called by `validate` and before a run.
FLOWLAB_API void check_trial_files(const Experiment& experiment, const std::string& output);

}  // namespace flowlab
