// `flowlab tune-grid`: a trial's stored model, a solver and a step budget in; the tuned grid out (tune_grid.hpp).
#include <fmt/format.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "stored_model.hpp"
#include "flowlab/architecture.hpp"
#include "flowlab/arrays.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/metric.hpp"
#include "flowlab/path.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/time_grid.hpp"
#include "flowlab/tune_grid.hpp"

namespace fs = std::filesystem;

namespace flowlab::cli {
namespace {

const std::vector<std::string> kObjectives = {"endpoint", "w2"};

// Writes the tuned grid into a copy of the results file, then puts the copy in place with its checksum: the results
// are never half-written. Group tuned_grids/<trial>/<run>: times, with the objective's values as attributes.
void record(const std::string& file, const std::string& trial, const std::string& run, const TunedGrid& g,
            const std::vector<std::pair<std::string, double>>& fresh, const std::string& objective) {
  const std::string tmp = file + ".tune-grid.tmp";
  fs::copy_file(file, tmp, fs::copy_options::overwrite_existing);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t f = H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) throw Error(fmt::format("tune-grid: cannot open {} for writing", tmp));
  bool ok = true;
  auto group = [&](hid_t parent, const std::string& name) {
    const hid_t g2 = H5Lexists(parent, name.c_str(), H5P_DEFAULT) > 0
                         ? H5Gopen2(parent, name.c_str(), H5P_DEFAULT)
                         : H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && g2 >= 0;
    return g2;
  };
  const hid_t top = group(f, "tuned_grids"), per_trial = group(top, trial);
  if (H5Lexists(per_trial, run.c_str(), H5P_DEFAULT) > 0) H5Ldelete(per_trial, run.c_str(), H5P_DEFAULT);
  const hid_t rg = group(per_trial, run);
  const hsize_t n = g.times.size();
  const hid_t sp = H5Screate_simple(1, &n, nullptr);
  const hid_t d = H5Dcreate2(rg, "times", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ok = ok && d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, g.times.data()) >= 0;
  H5Dclose(d), H5Sclose(sp);
  auto number = [&](const std::string& name, double v) {
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(rg, name.c_str(), H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && a >= 0 && H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0;
    H5Aclose(a), H5Sclose(s);
  };
  auto text = [&](const std::string& name, const std::string& v) {
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(rg, name.c_str(), t, s, H5P_DEFAULT, H5P_DEFAULT);
    const char* p = v.c_str();
    ok = ok && a >= 0 && H5Awrite(a, t, &p) >= 0;
    H5Aclose(a), H5Sclose(s), H5Tclose(t);
  };
  text("objective", objective);
  text("start", g.start);
  number("tuned", g.objective);
  for (const auto& [label, v] : g.starts) number(label, v);
  for (const auto& [label, v] : fresh) number("fresh:" + label, v);
  number("passes", g.passes);
  number("solves", static_cast<double>(g.solves));
  H5Gclose(rg), H5Gclose(per_trial), H5Gclose(top);
  if (H5Fclose(f) < 0 || !ok) {
    fs::remove(tmp);
    throw Error(fmt::format("tune-grid: writing the tuned grid into {} failed (the results file is unchanged)", file));
  }
  publish_checksummed(tmp, file);
}

}  // namespace

CLI::App* add_tune_grid(CLI::App& app, TuneGridArgs& a) {
  auto* cmd =
      app.add_subcommand("tune-grid", "optimise a solver's time grid for a trial's stored model and a step budget");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  cmd->add_option("--trial", a.trial, "the trial id")->required()->type_name("ID");
  cmd->add_option("--solver", a.solver, "a fixed-step or multistep solver (default euler)")->type_name("NAME");
  cmd->add_option("--steps", a.steps, "the step budget N (default 4)")->check(CLI::PositiveNumber);
  cmd->add_option("--objective", a.objective,
                  "endpoint: mean squared distance to dopri5 (rtol = atol = 1e-6) from the same noise (default); "
                  "w2: the w2 metric against the trial's stored reference samples")
      ->type_name("endpoint|w2");
  cmd->add_option("--samples", a.samples, "noise samples to tune on (default 2000)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "seed of the tuning noise (default 0)");
  cmd->add_option("--check-seed", a.check_seed, "seed of the fresh noise the grid is checked on (default: --seed + 1)");
  cmd->add_option("--out", a.out, "also write the eval run with the tuned list grid to FILE.yaml")
      ->type_name("FILE.yaml");
  return cmd;
}

namespace {

// --solver with --steps, refused with the valid names unless it is a fixed-step or multistep solver.
std::shared_ptr<Solver> fixed_step_solver(const Registry& registry, const TuneGridArgs& args) {
  bool known = false, stochastic = false, jumps = false;
  std::vector<std::string> fixed;
  for (const auto& info : registry.list("solver")) {
    known = known || info.name == args.solver;
    const auto s = registry.create<Solver>("solver", info.name);
    if (!s->adaptive() && !s->stochastic() && !s->uses_step_field()) fixed.push_back(info.name);
    if (info.name == args.solver) stochastic = s->stochastic(), jumps = s->uses_step_field();
  }
  // A stochastic solver (euler_maruyama) is refused too: the objectives compare one draw of its noise. So is a
  // few-step solver, which steps with an average velocity that the tuned velocity field does not have.
  if (!known || std::find(fixed.begin(), fixed.end(), args.solver) == fixed.end())
    throw Error(fmt::format("tune-grid: --solver {} {}: give a fixed-step or multistep solver (valid: {})", args.solver,
                            !known       ? "is not a solver"
                            : stochastic ? "is stochastic (the objective would see one draw of its noise)"
                            : jumps ? "steps with a few-step model's average velocity, which tune-grid does not tune"
                                    : "is adaptive and chooses its own times",
                            fmt::join(fixed, ", ")));
  Params sp;
  sp.set("steps", args.steps);
  return registry.create<Solver>("solver", args.solver, sp);
}

// The table of every grid's objective on the tuning and the fresh noise, then the tuned grid as an eval run (also
// written to --out); returns that run's YAML line.
std::string print_tuned(const TuneGridArgs& args, const std::string& trial, int64_t check_seed,
                        const std::vector<std::pair<std::string, std::vector<double>>>& hand, const TunedGrid& tuned,
                        const std::vector<std::pair<std::string, double>>& fresh, double seconds) {
  std::cout << fmt::format("tune-grid: trial {}, solver/{} with {} steps, objective {} ({}), {} samples\n", trial,
                           args.solver, args.steps, args.objective,
                           args.objective == "w2"
                               ? "w2 against the trial's stored reference samples"
                               : "mean squared distance to dopri5 at rtol = atol = 1e-6 from the same noise",
                           args.samples);
  std::cout << fmt::format("  {:<12} {:>22} {:>22}\n", "grid", fmt::format("tuning noise (seed {})", args.seed),
                           fmt::format("fresh noise (seed {})", check_seed));
  for (size_t i = 0; i < hand.size(); ++i)
    std::cout << fmt::format("  {:<12} {:>22.6g} {:>22.6g}\n", hand[i].first, tuned.starts[i].second, fresh[i].second);
  std::cout << fmt::format("  {:<12} {:>22.6g} {:>22.6g}\n", "tuned", tuned.objective, fresh.back().second);
  std::cout << fmt::format("  started from {}, {} passes, {} solves, {:.1f} s\n", tuned.start, tuned.passes,
                           tuned.solves, seconds);
  std::vector<std::string> times;
  for (double t : tuned.times) times.push_back(fmt::format("{}", t));
  const std::string snippet =
      fmt::format("- {{solver: {}, steps: {}, grid: {{name: list, params: {{times: [{}]}}}}}}\n", args.solver,
                  args.steps, fmt::join(times, ", "));
  std::cout << "eval run (paste into eval.solvers):\n" << snippet;
  if (!args.out.empty()) {
    std::ofstream out(args.out);
    out << fmt::format(
               "# flowlab tune-grid {} --trial {} --solver {} --steps {} --objective {} --samples {} --seed {}\n",
               args.file, trial, args.solver, args.steps, args.objective, args.samples, args.seed)
        << snippet;
    if (!out.flush()) throw Error(fmt::format("tune-grid: cannot write {}", args.out));
  }
  return snippet;
}

}  // namespace

int run_tune_grid(const Registry& registry, const TuneGridArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  if (std::find(kObjectives.begin(), kObjectives.end(), args.objective) == kObjectives.end())
    throw Error(
        fmt::format("tune-grid: --objective '{}' is not one of {}", args.objective, fmt::join(kObjectives, ", ")));
  const auto solver = fixed_step_solver(registry, args);

  const StoredResults res = read_results(args.file);
  const StoredTrial& trial = res.trial(args.trial);
  const StoredModel stored = read_model(args.file, trial.id);
  torch::NoGradGuard no_grad;
  at::set_num_threads(1);  // as the trial's worker evaluated it
  ArchitectureSpec spec;
  auto model = rebuild_model(registry, stored, spec);
  // Conditioned models: their unconditional field (guidance 1 on the null condition), as flowlab sample without
  // --class.
  const VelocityField field =
      spec.num_classes > 0 || spec.attr_dim > 0
          ? guided_field(model, Condition(), 1.0)
          : VelocityField([&](const at::Tensor& x, const at::Tensor& t) { return model->forward(x, t); });
  std::shared_ptr<Path> path;
  if (!stored.path.empty()) {
    Params pp;
    for (const auto& [k, v] : stored.path_params) pp.set(k, v);
    path = registry.create<Path>("path", stored.path, pp);
  }

  auto noise = [&](int64_t seed) {
    torch::manual_seed(static_cast<uint64_t>(seed));
    std::vector<int64_t> shape = {args.samples};
    for (auto s : stored.event_shape) shape.push_back(s);
    return at::randn(shape, at::kFloat);
  };
  Params rp;
  rp.set("rtol", 1e-6).set("atol", 1e-6);
  const auto reference_solver = registry.create<Solver>("solver", "dopri5", rp);
  at::Tensor data_reference;
  std::shared_ptr<Metric> w2;
  if (args.objective == "w2") {
    data_reference = to_tensor(read_array(args.file, fmt::format("trials/{}/samples/reference", trial.id)));
    w2 = registry.create<Metric>("metric", "w2", Params());
  }
  // The objective on noise x0: endpoint distance to the reference solve from x0, or w2 against the stored data.
  auto objective_for = [&](const at::Tensor& x0) -> GridObjective {
    if (w2) return [&, x0](const at::Tensor& x) { return w2->compute(x, data_reference); };
    const at::Tensor target = reference_solver->sample(x0, field).x;
    return [target](const at::Tensor& x) { return (x - target).pow(2).mean().item<double>(); };
  };

  std::vector<std::pair<std::string, std::vector<double>>> hand;
  auto add_hand = [&](const std::string& label, const std::string& name, const Params& p) {
    try {
      hand.emplace_back(label, registry.create<TimeGrid>("time_grid", name, p)->times(args.steps, path.get()));
    } catch (const Error& e) {
      std::cout << fmt::format("tune-grid: {} left out: {}\n", label, e.what());
    }
  };
  add_hand("uniform", "uniform", Params());
  Params edm, shift;
  edm.set("rho", 7.0);
  shift.set("s", 3.0);
  add_hand("edm[rho=7]", "edm", edm);
  add_hand("shift[s=3]", "shift", shift);

  const at::Tensor x0 = noise(args.seed);
  const TunedGrid tuned = tune_grid(*solver, field, x0, path.get(), objective_for(x0), hand);
  const double tune_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const int64_t check_seed = args.check_seed >= 0 ? args.check_seed : args.seed + 1;
  const at::Tensor x0_fresh = noise(check_seed);
  const GridObjective fresh_objective = objective_for(x0_fresh);
  std::vector<std::pair<std::string, double>> fresh;
  for (const auto& [label, t] : hand)
    fresh.emplace_back(label, fresh_objective(solve_on_grid(*solver, field, x0_fresh, t, path.get())));
  fresh.emplace_back("tuned", fresh_objective(solve_on_grid(*solver, field, x0_fresh, tuned.times, path.get())));

  print_tuned(args, trial.id, check_seed, hand, tuned, fresh, tune_seconds);
  const std::string run = fmt::format("{}:steps={},objective={}", args.solver, args.steps, args.objective);
  record(args.file, trial.id, run, tuned, fresh, args.objective);
  std::cout << fmt::format("recorded in {}: tuned_grids/{}/{}\n", args.file, trial.id, run);
  return 0;
}

}  // namespace flowlab::cli
