// The subcommands that live in their own files: each adds itself to the app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace flowlab {
class Registry;
}

namespace flowlab::cli {

/// `flowlab report RESULTS.h5 [--by KEY...] [--metric NAME...] [--format md|csv|term] [--within F]`.
struct ReportArgs {
  std::string file, format = "term";
  std::vector<std::string> by, metrics;
  double within = 0.1;
};
CLI::App* add_report(CLI::App& app, ReportArgs& args);
int run_report(const Registry& registry, const ReportArgs& args);

}  // namespace flowlab::cli

namespace flowlab::cli {

/// `flowlab plot RESULTS.h5 --out DIR [--by KEY...] [--metric NAME] [--trial ID] [--run LABEL] [--width W --height H]`.
struct PlotArgs {
  std::string file, out, trial, run, metric;
  std::vector<std::string> by;
  int width = 800, height = 600;
};
CLI::App* add_plot(CLI::App& app, PlotArgs& args);
int run_plot(const Registry& registry, const PlotArgs& args);

}  // namespace flowlab::cli
