// `flowlab ema`: post-hoc EMA after training (EDM2). The trial's power-function EMA snapshots (train.phema) are
// combined into the EMA of any relative std, which is evaluated on every run of the trial's eval.solvers, on its
// stored noise, as a trial with eval.ema_std does: the rows, labelled ",ema_std=S", are the same bit for bit on CPU.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <iostream>
#include <set>

#include "commands.hpp"
#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/phema.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"

namespace flowlab::cli {

CLI::App* add_ema(CLI::App& app, EmaArgs& a) {
  auto* cmd = app.add_subcommand("ema", "evaluate a trial's post-hoc EMA of any length, reconstructed from its "
                                        "train.phema snapshots");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  cmd->add_option("--trial", a.trial, "the trial id")->required()->type_name("ID");
  cmd->add_option("--std", a.stds, "relative std of the EMA to reconstruct, in (0, 0.2887); repeatable")
      ->required()
      ->type_name("S");
  cmd->add_option("--device", a.device, "where to evaluate (default cpu)")->type_name("DEVICE");
  cmd->add_option("--format", a.format, "term (a table) or csv")->check(CLI::IsMember({"term", "csv"}));
  return cmd;
}

int run_ema(const Registry& registry, const EmaArgs& args) {
  const StoredResults res = read_results(args.file);
  const StoredTrial& stored = res.trial(args.trial);
  if (stored.status != "completed")
    throw Error(fmt::format("trial {} is {}: only a completed trial has stored weights", stored.id, stored.status));
  for (const double s : args.stds)
    if (!(s > 0 && s < kPhemaMaxStd))
      throw Error(fmt::format("--std {} is outside the reconstructable range of post-hoc EMA stds (0, {:.6f}): a "
                              "power-function profile's relative std is below 1/sqrt(12), the uniform average over all "
                              "of training",
                              s, kPhemaMaxStd));
  const PhemaRecord phema = read_phema(args.file, stored.id);
  // The trial's configuration from the experiment the file keeps; it must still expand to the stored one.
  const Experiment ex = load_experiment_text(res.experiment_file, res.experiment_yaml, registry);
  const auto it =
      std::find_if(ex.trials.begin(), ex.trials.end(), [&](const TrialConfig& t) { return t.id == stored.id; });
  if (it == ex.trials.end())
    throw Error(fmt::format("the experiment kept in the file no longer has trial {}", stored.id));
  const StoredModel model = read_model(args.file, stored.id);
  const TrialResult r = evaluate_posthoc_ema(*it, registry, args.device, model.weights, phema, args.stds);

  const int64_t last = stored.rounds.empty() ? phema.steps.back() : stored.rounds.back().steps;
  if (args.format == "term") {
    std::cout << fmt::format("trial {}: post-hoc EMA from {} snapshots (stds {}; steps {} to {}), at step {}\n",
                             stored.id, phema.steps.size(),
                             fmt::join(std::set<double>(phema.stds.begin(), phema.stds.end()), ", "),
                             phema.steps.front(), phema.steps.back(), last);
    for (const double s : args.stds) {
      const PhemaFit fit = phema_fit(phema.steps, phema.stds, last, s);
      std::cout << fmt::format("  ema_std={}: {}\n", s,
                               fit.exact < phema.steps.size()
                                   ? std::string("a stored snapshot, exactly")
                                   : fmt::format("profile error {:.3g} (sum over steps of |reconstructed - exact| "
                                                 "weight)",
                                                 fit.profile_error));
    }
  }
  std::vector<std::string> header = {"label", "nfe"};
  for (const auto& m : r.metric_names) header.push_back(m);
  header.push_back("error");
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : r.eval) {
    std::vector<std::string> cells = {row.label, std::to_string(row.nfe)};
    for (const double v : row.metrics) cells.push_back(fmt::format("{:.6g}", v));
    cells.push_back(row.error);
    rows.push_back(cells);
  }
  if (args.format == "csv") {  // RFC 4180: a cell with a comma or quote (labels have commas) in quotes
    auto cell = [](const std::string& c) {
      if (c.find_first_of(",\"\n") == std::string::npos) return c;
      std::string q = "\"";
      for (const char ch : c) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      return q + "\"";
    };
    rows.insert(rows.begin(), header);
    for (const auto& cells : rows) {
      std::vector<std::string> out;
      for (const auto& c : cells) out.push_back(cell(c));
      std::cout << fmt::format("{}\n", fmt::join(out, ","));
    }
    return r.failed_rows > 0 ? 1 : 0;
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& cells : rows) width[c] = std::max(width[c], cells[c].size());
  }
  auto print = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) line += fmt::format("{:<{}}  ", cells[c], width[c]);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  };
  print(header);
  for (const auto& cells : rows) print(cells);
  return r.failed_rows > 0 ? 1 : 0;
}

}  // namespace flowlab::cli
