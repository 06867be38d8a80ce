// The subcommands that live in their own files: each adds itself to the app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>

#include "flowlab/records.hpp"

#include <functional>
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
  bool during = false;
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

namespace flowlab::cli {

/// `flowlab sample RESULTS.h5 --trial ID [--solver NAME --steps N | --rtol R] [--n N] [--guidance W] [--class C]
/// [--seed S] [--from-stored-noise] [--interpolate | --inpaint MASK.png --observed IMG.png] --out FILE.(h5|png|csv)`.
struct SampleArgs {
  std::string file, trial, solver, out;
  int64_t steps = 0, n = 0, seed = 0, label = -1;  // n 0: 1000, or all stored noise
  double rtol = 0, guidance = 1.0;
  bool from_stored_noise = false;
  bool interpolate = false;       // samples along a slerp between two noises (n 0: 10)
  std::string inpaint, observed;  // mask and observed image PNGs of --inpaint (n 0: 8)
};
CLI::App* add_sample(CLI::App& app, SampleArgs& args);
int run_sample(const Registry& registry, const SampleArgs& args);

}  // namespace flowlab::cli

namespace flowlab::cli {

/// `flowlab export RESULTS.h5 --trial ID [--round R] --out FIELD.pt`: the trial's evaluated network as TorchScript.
struct ExportArgs {
  std::string file, trial, out;
  int64_t round = -1;  ///< -1: the stored (last) round
};
CLI::App* add_export(CLI::App& app, ExportArgs& args);
int run_export(const Registry& registry, const ExportArgs& args);

}  // namespace flowlab::cli

namespace flowlab::cli {

/// `flowlab ema RESULTS.h5 --trial ID --std S [--std S ...] [--device D] [--format term|csv]`: the trial's post-hoc
/// EMAs of those relative stds, reconstructed from its train.phema snapshots and evaluated on every eval run.
struct EmaArgs {
  std::string file, trial, device = "cpu", format = "term";
  std::vector<double> stds;
};
CLI::App* add_ema(CLI::App& app, EmaArgs& args);
int run_ema(const Registry& registry, const EmaArgs& args);

}  // namespace flowlab::cli

namespace flowlab::cli {

/// `flowlab verify RESULTS.h5`: exit 0 when the experiment file, its trial files and checkpoints are all well.
struct VerifyArgs {
  std::string file;
};
CLI::App* add_verify(CLI::App& app, VerifyArgs& args);
int run_verify(const VerifyArgs& args);

/// Runs `command`, which reads `file`, after a warning on stderr when the file does not match its checksum: a
/// flowlab::Error it throws is thrown again naming the file and saying whether
/// it looks truncated, corrupt or not a flowlab file, with the advice to run flowlab verify (explain_file_error).
int naming_file(const std::string& file, const std::function<int()>& command);

}  // namespace flowlab::cli

namespace flowlab::cli {

/// `flowlab tune-grid RESULTS.h5 --trial ID --solver NAME --steps N [--objective endpoint|w2] [--samples M]
/// [--seed S] [--check-seed S2] [--out FILE.yaml]`: optimises the time grid of a trial's stored model for a
/// fixed-step or multistep solver and a step budget (tune_grid.hpp), checks it on fresh noise, prints it as an eval
/// run with a `list` grid, and records it in the results file (tuned_grids/<trial>/<run>).
struct TuneGridArgs {
  std::string file, trial, solver = "euler", objective = "endpoint", out;
  int64_t steps = 4, samples = 2000, seed = 0, check_seed = -1;  // check_seed -1: seed + 1
};
CLI::App* add_tune_grid(CLI::App& app, TuneGridArgs& args);
int run_tune_grid(const Registry& registry, const TuneGridArgs& args);

}  // namespace flowlab::cli
