// `flowlab merge OUT.h5 INPUTS...`: the trial files of shards (files or .trials directories) into one experiment file.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "flowlab/config.hpp"
#include "flowlab/files.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/slurm.hpp"
#include "scaleout.hpp"

namespace flowlab::cli {

Command add_merge_command(CLI::App& app) {
  struct Args {
    std::string output, experiment;
    std::vector<std::string> inputs;
  };
  auto args = std::make_shared<Args>();
  Command c;
  c.app = app.add_subcommand("merge", "merge trial files (of shards) into one experiment file");
  c.app->add_option("output", args->output, "the experiment file to write (OUT.h5)")->required();
  c.app->add_option("inputs", args->inputs, "trial files, or directories of them (OUT.trials)")->required();
  c.app
      ->add_option("--experiment", args->experiment,
                   "the experiment YAML (default: the experiment.yaml that flowlab run keeps in a .trials directory)")
      ->type_name("EXP.yaml");
  c.run = [args](const Registry& registry) {
    trial_files_in(args->inputs);  // every input exists, before anything else is said
    std::string file = args->experiment;
    if (file.empty()) file = stored_experiment(args->inputs);
    if (file.empty())
      throw Error("no experiment to merge for: pass --experiment EXP.yaml (a .trials directory written by flowlab run "
                  "holds it as experiment.yaml)");
    const auto ex = load_experiment(file, registry);
    MergeReport report;
    try {
      report = merge_trial_files(args->output, ex, args->inputs);
    } catch (const WriteError& e) {
      if (!e.disk_full_or_failing()) throw;
      throw Error(fmt::format("{}; nothing was written to {} and the trial files are untouched: free space and run "
                              "this merge again",
                              e.what(), args->output));
    }
    for (const auto& n : report.notes) std::cout << "note: " << n << "\n";
    for (const auto& p : report.problems)
      std::cout << fmt::format("{}: cannot merge {}: {}\n", p.id.empty() ? "merge" : p.id, p.file,
                               p.error.rfind("HDF5: ", 0) == 0 ? explain_file_error(p.file, p.error) : p.error);
    std::cout << fmt::format("merged {} of {} trials into {} (from {} trial file{})\n", report.merged, ex.trials.size(),
                             args->output, report.files, report.files == 1 ? "" : "s");
    if (!report.missing.empty())
      std::cout << fmt::format("missing {} trial{}: {}\n", report.missing.size(), report.missing.size() == 1 ? "" : "s",
                               fmt::join(report.missing, ", "));
    std::cout.flush();
    return report.missing.empty() && report.problems.empty() ? 0 : 1;
  };
  return c;
}

}  // namespace flowlab::cli
