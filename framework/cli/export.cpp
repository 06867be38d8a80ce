// `flowlab export`: a trial's evaluated network (its EMA weights where eval.use_ema) as a TorchScript module that
// PyTorch loads with torch.jit.load: forward(x, t) -> v, and step(x, t, d) for few-step models.
#include <fmt/format.h>
#include <torch/torch.h>

#include "commands.hpp"
#include "stored_model.hpp"
#include "flowlab/objective.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"
#include "flowlab/torchscript.hpp"

namespace flowlab::cli {

CLI::App* add_export(CLI::App& app, ExportArgs& a) {
  auto* cmd =
      app.add_subcommand("export", "write a trial's network as a TorchScript module (torch.jit.load in PyTorch)");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  cmd->add_option("--trial", a.trial, "the trial id")->required()->type_name("ID");
  cmd->add_option("--round", a.round, "the round (default: the last stage, the one whose weights are stored)")
      ->type_name("R")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", a.out, "the TorchScript file to write")->required()->type_name("FIELD.pt");
  return cmd;
}

int run_export(const Registry& registry, const ExportArgs& args) {
  const StoredResults res = read_results(args.file);
  const StoredTrial& trial = res.trial(args.trial);
  if (trial.status != "completed")
    throw Error(fmt::format("trial {} is {}: only a completed trial has stored weights", trial.id, trial.status));
  if (args.round >= 0 && !trial.rounds.empty() && args.round != trial.rounds.back().round)
    throw Error(fmt::format("--round {}: the file stores the weights of trial {}'s last stage only (round {})",
                            args.round, trial.id, trial.rounds.back().round));
  const StoredModel stored = read_model(args.file, trial.id);
  torch::NoGradGuard no_grad;  // rebuild_model copies the stored weights into the parameters
  ArchitectureSpec spec;
  auto model = rebuild_model(registry, stored, spec);
  export_torchscript(*model, stored.event_shape, spec.step_input, spec.num_classes, spec.attr_dim, args.out);
  std::string conds, shapes;
  if (spec.num_classes > 0) {
    conds += ", label";
    shapes += fmt::format(", label int64 [B] in 0..{} ({}: the null class)", spec.num_classes, spec.num_classes);
  }
  if (spec.attr_dim > 0) {
    conds += ", attr, null";
    shapes += fmt::format(", attr [B, {}], null bool [B] (true: the null condition)", spec.attr_dim);
  }
  std::cout << fmt::format("wrote {}: forward(x, t{}) -> v{} for x [B, {}], t [B]{} (trial {}, architecture/{})\n",
                           args.out, conds, spec.step_input ? fmt::format(", step(x, t, d{}) -> u", conds) : "",
                           fmt::join(stored.event_shape, ", "), shapes, trial.id, stored.architecture);
  return 0;
}

}  // namespace flowlab::cli
