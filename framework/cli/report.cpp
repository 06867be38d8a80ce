// `flowlab report`: the quality-vs-steps table of a results file (finished or partial).
#include <fmt/format.h>

#include <iostream>

#include "commands.hpp"
#include "flowlab/report.hpp"

namespace flowlab::cli {

CLI::App* add_report(CLI::App& app, ReportArgs& a) {
  auto* cmd = app.add_subcommand("report", "print the quality-vs-steps table of a results file (finished or partial)");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  cmd->add_option("--by", a.by, "group by these swept keys, or seed (repeatable; default: every swept key)")
      ->type_name("KEY");
  cmd->add_option("--metric", a.metrics,
                  "metrics to show (repeatable; default: all); the first one decides steps to quality")
      ->type_name("NAME");
  cmd->add_option("--format", a.format, "term (default), md or csv")->type_name("FORMAT");
  cmd->add_option("--within", a.within,
                  "steps to quality: within this fraction of the best converged value (default 0.1)")
      ->type_name("FRACTION")
      ->check(CLI::Range(0.0, 1e9));
  cmd->add_flag("--during", a.during,
                "only the metrics against the training step (evaluations during training, eval.every); csv: one flat "
                "table of them");
  return cmd;
}

int run_report(const Registry& registry, const ReportArgs& a) {
  const StoredResults results = read_results(a.file, &registry);
  ReportOptions opt;
  opt.by = a.by;
  opt.metrics = a.metrics;
  opt.within = a.within;
  opt.during = a.during;
  const Report rep = build_report(results, opt);
  write_report(rep, a.format, std::cout, std::cerr);
  return 0;
}

}  // namespace flowlab::cli
