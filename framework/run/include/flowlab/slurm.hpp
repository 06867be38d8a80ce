// Scale-out: merging the trial files of shards into one experiment file (`flowlab merge`), and Slurm array scripts
// whose task I runs shard I/N of the sweep (`flowlab slurm`). Sharding itself is in runner.hpp (shard_trials).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowlab/config.hpp"
#include "flowlab/results.hpp"

namespace flowlab {

/// What merge_trial_files() did.
struct MergeReport {
  size_t merged = 0;                   ///< trials in the experiment file
  size_t files = 0;                    ///< trial files found in the inputs
  std::vector<std::string> missing;    ///< ids of the experiment's trials without a usable result, in sweep order
  std::vector<std::string> notes;      ///< files left out, with the reason (another experiment, another configuration)
  std::vector<MergeProblem> problems;  ///< files that could not be read or copied
};

/// The trial files of `inputs`: each a trial file, or a directory whose `*.h5` files are trial files (a `.trials`
/// directory of `flowlab run`, with or without --shard). Throws flowlab::Error for an input that does not exist.
FLOWLAB_API std::vector<std::string> trial_files_in(const std::vector<std::string>& inputs);

/// Merges the trial files of `inputs` into the experiment file `output` (merge_experiment: written atomically; the
/// same inputs give the same file). The same trial in two files with the same config_hash is merged once (a
/// completed or diverged result before a failed one); with different config_hashes the merge is refused (throws
/// flowlab::Error naming both files) and nothing is written. Files of trials that are not in `experiment`, or that
/// were run with another configuration, are left out with a note.
FLOWLAB_API MergeReport merge_trial_files(const std::string& output, const Experiment& experiment,
                                          const std::vector<std::string>& inputs);

/// The experiment text stored by `flowlab run` next to its trial files: `<dir>/experiment.yaml` for each directory
/// input that has one. Throws flowlab::Error when two inputs hold different experiments; "" when none has one.
FLOWLAB_API std::string stored_experiment(const std::vector<std::string>& inputs);

/// What a `flowlab slurm` script runs and asks for.
struct SlurmOptions {
  std::string flowlab;                    ///< the flowlab executable (absolute)
  std::vector<std::string> plugin_paths;  ///< passed on as --plugin-path
  std::string experiment;                 ///< the experiment YAML (absolute)
  std::string name;                       ///< job name
  std::string output;                     ///< the experiment file (absolute); trial files go to output.trials/
  std::string workdir;                    ///< the tasks' working directory (--chdir)
  std::string log_dir;                    ///< where the tasks' logs go: <log_dir>/<array job>_<index>.log
  int64_t tasks = 1;                      ///< N: the array's size; task I runs shard I/N
  std::vector<int64_t> indices;           ///< the array indices submitted (empty: 0..N-1)
  int64_t max_parallel = 0;               ///< at most this many tasks at once (%K); 0: no limit
  std::string partition, time, account;   ///< "" : the cluster's default
  int64_t gpus_per_task = 0;              ///< --gres=gpu:G; 0: a CPU job (--devices cpu)
  int64_t cpus_per_task = 0;              ///< 0: the cluster's default
  std::vector<std::string> sbatch_args;   ///< extra `#SBATCH` arguments, verbatim
  bool requeue = false;                   ///< --requeue, and SIGUSR1 before the time limit checkpoints and requeues
  int64_t signal_seconds = 120;           ///< how long before the time limit SIGUSR1 comes
  bool retry_failed = false;              ///< the tasks rerun failed and timed-out trials (--only-failed)
};

/// "0-3,7,9-10": Slurm's --array syntax for sorted, distinct indices.
FLOWLAB_API std::string array_ranges(const std::vector<int64_t>& indices);

/// The sbatch script's text. Each task runs `flowlab run EXP --shard $SLURM_ARRAY_TASK_ID/N --resume`, so a requeued
/// or resubmitted task continues from its trials' results and checkpoints.
FLOWLAB_API std::string sbatch_script(const SlurmOptions& options);

/// The array indices (shards of `tasks`) that have a trial without a completed or diverged result for its current
/// configuration in output.trials/: what --only-failed resubmits.
FLOWLAB_API std::vector<int64_t> unfinished_shards(const Experiment& experiment, const std::string& output,
                                                   int64_t tasks);

/// The job id in what `sbatch --parsable` printed (stdout and stderr together): its last line that is "<id>" or
/// "<id>;<cluster>", all digits; "" when there is none. Other lines (sbatch's warnings) are not part of it.
FLOWLAB_API std::string sbatch_job_id(const std::string& output);

/// `s` quoted for bash where needed ('...' with ' written as '\'').
FLOWLAB_API std::string shell_quote(const std::string& s);

}  // namespace flowlab
