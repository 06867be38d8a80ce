// The subcommands that run experiments, each in its own file: `flowlab run` and the workers' `_trial` (run.cpp),
// `flowlab merge` (merge.cpp) and `flowlab slurm` (slurm.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace flowlab {
class Registry;
}

namespace flowlab::cli {

/// A subcommand added to the app; run() is called when it was chosen, after parsing.
struct Command {
  CLI::App* app = nullptr;
  std::function<int(const flowlab::Registry&)> run;
};

/// `flowlab run EXP.yaml [--resume] [--shard I/N] ...` (run.cpp). `self` gives the flowlab executable, which the
/// workers run; `plugin_paths` is read at run time.
Command add_run_command(CLI::App& app, std::function<std::string()> self, const std::vector<std::string>& plugin_paths);

/// The internal `_trial`: one trial in a worker process (run.cpp; the protocol is in flowlab/worker.hpp).
Command add_trial_command(CLI::App& app);

/// `flowlab merge OUT.h5 INPUTS... [--experiment EXP.yaml]`.
Command add_merge_command(CLI::App& app);

/// `flowlab slurm EXP.yaml [--submit] ...`. `self` gives the flowlab executable; `plugin_paths` is read at run time.
Command add_slurm_command(CLI::App& app, std::function<std::string()> self,
                          const std::vector<std::string>& plugin_paths);

}  // namespace flowlab::cli
