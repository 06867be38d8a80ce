// The runner: schedules an experiment's trials on device slots, each trial in its own child process (a crash
// or a throw fails that trial only), merges results after every trial, resumes and retries.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "flowlab/config.hpp"

namespace flowlab {

struct RunOptions {
  bool dry_run = false;
  bool resume = false;        ///< skip trials whose result file exists (completed or diverged)
  bool retry_failed = false;  ///< with resume: rerun failed trials too
  bool fail_fast = false;     ///< stop at the first failed trial
  std::vector<std::string> devices;  ///< overrides the YAML's devices when non-empty
  int64_t workers = 0;               ///< workers per device; 0: the YAML's workers_per_device
  int64_t threads = 0;               ///< threads per worker; 0: the YAML's threads
  std::string out;                   ///< overrides the YAML's output when non-empty
  std::string self;                  ///< path of the flowlab executable, for the child processes
  std::vector<std::string> plugin_paths;  ///< passed on to the children
};

/// Runs (or, with dry_run, lists) the experiment. Returns 0 when every trial completed or diverged, 1 when any
/// failed. Progress goes to `log`.
FLOWLAB_API int run_experiment(const Experiment& experiment, const RunOptions& options, std::ostream& log);

/// The device slots for `devices` ("auto": every visible GPU, else cpu) and `workers` per device.
FLOWLAB_API std::vector<std::string> device_slots(const std::vector<std::string>& devices, int64_t workers);

}  // namespace flowlab
