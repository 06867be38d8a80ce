// The worker protocol, in one place: how the runner starts `flowlab _trial` (arguments), what the worker prints
// (PROGRESS lines on stdout), how it exits (exit codes), and where trial results and checkpoints live (file names).
// The runner (runner.cpp) and the worker (run_worker, called by the CLI) both use only what is declared here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowlab/export.hpp"

namespace flowlab {

class Registry;

namespace worker {

/// Exit codes of `flowlab _trial`.
constexpr int kExitDone = 0;         ///< a result was written (completed or diverged)
constexpr int kExitTrialFailed = 3;  ///< the trial threw; a `failed` result with the message was written
constexpr int kExitCannotStart = 126;  ///< the runner died before the worker was set up
constexpr int kExitExecFailed = 127;   ///< exec of the flowlab executable failed

/// One trial to run in a worker process.
struct Job {
  std::string self;             ///< the flowlab executable
  std::vector<std::string> plugin_paths;
  std::string experiment_file;
  std::string id;               ///< trial id
  std::string device = "cpu";   ///< as the worker sees it ("cuda:0" once pinned with CUDA_VISIBLE_DEVICES)
  int64_t threads = 1;
  std::string out;              ///< the trial's result file
  std::string checkpoint;       ///< the trial's checkpoint file ("" for none)
};

/// argv for the worker process (argv[0] is job.self).
FLOWLAB_API std::vector<std::string> command_line(const Job& job);

/// "PROGRESS <step> <total> <loss>": the line a worker prints every log_every steps.
FLOWLAB_API std::string progress_line(int64_t step, int64_t total, double loss);
/// Parses a progress line; false for any other line.
FLOWLAB_API bool parse_progress(const std::string& line, int64_t& step, int64_t& total, double& loss);

/// Where the per-trial files of the experiment written to `output` live: `output`.trials/.
FLOWLAB_API std::string trial_dir(const std::string& output);
/// The result file of trial `id`.
FLOWLAB_API std::string trial_file_path(const std::string& output, const std::string& id);
/// The checkpoint of trial `id`.
FLOWLAB_API std::string checkpoint_path(const std::string& output, const std::string& id);

/// The worker side: loads the experiment, runs trial job.id on job.device with job.threads threads, writes its
/// result to job.out (a `failed` result with the message when the trial throws) and prints progress lines on
/// stdout. Returns the exit code.
FLOWLAB_API int run_worker(const Job& job, const Registry& registry);

}  // namespace worker
}  // namespace flowlab
