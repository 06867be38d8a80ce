// The scale-out subcommands, each in its own file: `flowlab merge` (merge.cpp) and `flowlab slurm` (slurm.cpp).
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

/// `flowlab merge OUT.h5 INPUTS... [--experiment EXP.yaml]`.
Command add_merge_command(CLI::App& app);

/// `flowlab slurm EXP.yaml [--submit] ...`. `self` gives the flowlab executable; `plugin_paths` is read at run time.
Command add_slurm_command(CLI::App& app, std::function<std::string()> self,
                          const std::vector<std::string>& plugin_paths);

}  // namespace flowlab::cli
