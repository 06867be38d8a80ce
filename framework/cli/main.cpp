// The `flowlab` command line: plugins, describe (and, as later issues land, validate/run/report).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>

#include "commands.hpp"
#include "flowlab/config.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/runner.hpp"
#include "flowlab/runtime.hpp"
#include "flowlab/version.hpp"
#include "flowlab/worker.hpp"
#include "scaleout.hpp"

namespace {

// Prints rows as left-aligned columns separated by two spaces.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += i + 1 < r.size() ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
    std::cout << line << "\n";
  }
}

void print_problems(const flowlab::Registry& registry) {
  for (const auto& p : registry.problems()) std::cerr << "flowlab: warning: " << p << "\n";
  for (const auto& n : registry.notes()) std::cerr << "flowlab: note: " << n << "\n";
}

int cmd_plugins(const flowlab::Registry& registry, const std::string& kind) {
  if (!kind.empty()) {
    const auto& kinds = flowlab::plugin_kinds();
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      throw flowlab::PluginNotFoundError(
          fmt::format("unknown plugin kind '{}' (valid: {})", kind, fmt::join(kinds, ", ")));
  }
  std::vector<std::vector<std::string>> rows = {{"KIND", "NAME", "VERSION", "DESCRIPTION", "FILE"}};
  for (const auto& p : registry.list(kind, true))
    rows.push_back({p.kind, p.name, p.version, p.description,
                    p.shadowed_by.empty() ? p.file : p.file + "  (shadowed by " + p.shadowed_by + ")"});
  print_table(rows);
  return 0;
}

int cmd_describe(const flowlab::Registry& registry, const std::string& what) {
  const auto slash = what.find('/');
  if (slash == std::string::npos)
    throw flowlab::PluginNotFoundError(fmt::format("expected KIND/NAME, got '{}' (e.g. solver/rk4)", what));
  const auto& p = registry.info(what.substr(0, slash), what.substr(slash + 1));
  std::cout << fmt::format("{} {}: {}\nfile: {}\n", p.key(), p.version, p.description, p.file);
  if (p.params.empty()) {
    std::cout << "parameters: none\n";
    return 0;
  }
  std::cout << "parameters:\n";
  std::vector<std::vector<std::string>> rows = {{"  NAME", "TYPE", "DEFAULT", "DOC"}};
  for (const auto& s : p.params) rows.push_back({"  " + s.name, s.type_name(), s.default_text, s.doc});
  print_table(rows);
  return 0;
}

std::string self_path(const char* argv0) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return std::filesystem::absolute(argv0).string();
}

int cmd_validate(const flowlab::Registry& registry, const std::string& file) {
  const auto ex = flowlab::load_experiment(file, registry, /*documents=*/false);
  flowlab::check_trial_files(ex, ex.output);
  std::cout << fmt::format("{}: OK ({})\n", file, flowlab::counted(static_cast<int64_t>(ex.trials.size()), "trial"));
  return 0;
}

// A range check that says what it wants in words ("--workers must be at least 1").
CLI::Validator at_least_one(const std::string& option) {
  return CLI::Validator(
      [option](std::string& value) -> std::string {
        try {
          size_t used = 0;
          const long long v = std::stoll(value, &used);
          if (used == value.size() && v >= 1) return "";
        } catch (const std::exception&) {
        }
        return fmt::format("{} must be at least 1 (got '{}')", option, value);
      },
      "INT >= 1");
}

// The first word that is not an option (or an option's value): the subcommand the user asked for.
std::string requested_subcommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--plugin-path") {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    return a;
  }
  return "";
}

}  // namespace

// Longer than 80 lines on purpose: it is the one table of subcommands (each declared by its own file's add_*, and
// the internal _trial and _devices), then the dispatch; splitting it would scatter that table.
int main(int argc, char** argv) {
  flowlab::tune_allocator();  // before the first tensor; workers run this same main
  CLI::App app{"flowlab: flow-matching experiments with plugin paths, solvers and models"};
  app.set_version_flag("--version", std::string("flowlab ") + FLOWLAB_VERSION);
  app.require_subcommand(1);
  std::vector<std::string> plugin_path;
  app.add_option("--plugin-path", plugin_path, "extra plugin directory (repeatable); also $FLOWLAB_PLUGIN_PATH")
      ->type_name("DIR");

  std::string kind;
  auto* plugins = app.add_subcommand("plugins", "list the plugins found, optionally of one KIND");
  plugins->add_option("kind", kind, fmt::format("{}", fmt::join(flowlab::plugin_kinds(), ", ")));

  std::string what;
  auto* describe = app.add_subcommand("describe", "show a plugin's parameters with types, defaults and docs");
  describe->add_option("plugin", what, "KIND/NAME, e.g. solver/rk4")->required();

  std::string exp_file;
  auto* validate = app.add_subcommand("validate", "check an experiment file: schema, plugins and their parameters");
  validate->add_option("experiment", exp_file, "the experiment YAML")->required();

  flowlab::RunOptions run_opt;
  auto* run = app.add_subcommand("run", "run an experiment's sweep and write its HDF5 results");
  run->add_option("experiment", exp_file, "the experiment YAML")->required();
  run->add_flag("--dry-run", run_opt.dry_run, "print the trial table and run nothing");
  run->add_option("--devices", run_opt.devices, "devices, overriding the YAML: auto, cpu, cuda:N (repeatable)");
  run->add_option("--workers", run_opt.workers, "workers per device")->check(at_least_one("--workers"));
  run->add_option("--threads", run_opt.threads, "threads per worker")->check(at_least_one("--threads"));
  run->add_option("--out", run_opt.out, "the HDF5 file, overriding the YAML's output");
  run->add_flag("--resume", run_opt.resume, "finish an interrupted sweep without redoing finished trials");
  run->add_flag("--retry-failed", run_opt.retry_failed, "with --resume: rerun the failed trials too");
  run->add_flag("--fail-fast", run_opt.fail_fast, "stop at the first failed trial");
  std::string shard;
  run->add_option("--shard", shard,
                  "run only shard I of N (0-based: trials i with i % N == I); default from SLURM_ARRAY_TASK_ID and "
                  "SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX) when set")
      ->type_name("I/N")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            try {
              flowlab::parse_shard(v);
              return "";
            } catch (const std::exception& e) {
              const std::string m = e.what();  // CLI11 puts "--shard: " before it
              return m.rfind("--shard ", 0) == 0 ? m.substr(8) : m;
            }
          },
          ""));
  run->add_option("--merge-every", run_opt.merge_every,
                  "rebuild the experiment file at most every S seconds (and at the end); 0: after every trial")
      ->type_name("S")
      ->check(CLI::NonNegativeNumber);

  flowlab::cli::ReportArgs report_args;
  auto* report = flowlab::cli::add_report(app, report_args);
  flowlab::cli::PlotArgs plot_args;
  auto* plot = flowlab::cli::add_plot(app, plot_args);
  flowlab::cli::SampleArgs sample_args;
  auto* sample = flowlab::cli::add_sample(app, sample_args);
  flowlab::cli::ExportArgs export_args;
  auto* export_cmd = flowlab::cli::add_export(app, export_args);
  flowlab::cli::EmaArgs ema_args;
  auto* ema = flowlab::cli::add_ema(app, ema_args);
  flowlab::cli::VerifyArgs verify_args;
  auto* verify = flowlab::cli::add_verify(app, verify_args);
  flowlab::cli::TuneGridArgs tune_args;
  auto* tune = flowlab::cli::add_tune_grid(app, tune_args);

  flowlab::worker::Job job;  // internal: one trial in a worker process (the protocol is in flowlab/worker.hpp)
  auto* trial = app.add_subcommand("_trial", "");
  trial->group("");
  trial->add_option("experiment", job.experiment_file);
  trial->add_option("--snapshot", job.snapshot);
  trial->add_option("--id", job.id)->required();
  trial->add_option("--device", job.device);
  trial->add_option("--threads", job.threads);
  trial->add_option("--out", job.out)->required();
  trial->add_option("--checkpoint", job.checkpoint);
  trial->add_option("--tensorboard", job.tensorboard);
  trial->add_option("--config-hash", job.config_hash);

  const auto merge_cmd = flowlab::cli::add_merge_command(app);
  const auto slurm_cmd = flowlab::cli::add_slurm_command(
      app, [&] { return self_path(argv[0]); }, plugin_path);

  auto* devices = app.add_subcommand("_devices", "");  // internal: the runner's device probe (it never touches CUDA)
  devices->group("");

  {
    // An unknown subcommand gets its own message (CLI11 would only say that one is required).
    std::vector<std::string> names;
    for (const auto* sub : app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); }))
      names.push_back(sub->get_name());
    const std::string asked = requested_subcommand(argc, argv);
    if (!asked.empty() && asked[0] != '_' && std::find(names.begin(), names.end(), asked) == names.end()) {
      std::cerr << fmt::format("flowlab: error: unknown subcommand '{}' (valid: {})\n", asked, fmt::join(names, ", "));
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "flowlab: error: " << e.what() << " (see 'flowlab --help')\n";
    return 2;
  }
  try {
    if (*devices) return flowlab::worker::run_devices();
    flowlab::Registry registry(plugin_path);
    if (!*trial) print_problems(registry);
    if (*plugins) return cmd_plugins(registry, kind);
    if (*describe) return cmd_describe(registry, what);
    if (*validate) return cmd_validate(registry, exp_file);
    if (*trial) {
      if (job.snapshot.empty() && job.experiment_file.empty()) throw flowlab::Error("_trial: give --snapshot or EXP");
      return flowlab::worker::run_worker(job, registry);
    }
    if (*merge_cmd.app) return merge_cmd.run(registry);
    if (*slurm_cmd.app) return slurm_cmd.run(registry);
    using flowlab::cli::naming_file;
    if (*report) return naming_file(report_args.file, [&] { return flowlab::cli::run_report(registry, report_args); });
    if (*plot) return naming_file(plot_args.file, [&] { return flowlab::cli::run_plot(registry, plot_args); });
    if (*sample) return naming_file(sample_args.file, [&] { return flowlab::cli::run_sample(registry, sample_args); });
    if (*export_cmd)
      return naming_file(export_args.file, [&] { return flowlab::cli::run_export(registry, export_args); });
    if (*ema) return naming_file(ema_args.file, [&] { return flowlab::cli::run_ema(registry, ema_args); });
    if (*verify) return flowlab::cli::run_verify(verify_args);
    if (*tune) return naming_file(tune_args.file, [&] { return flowlab::cli::run_tune_grid(registry, tune_args); });
    if (*run) {
      if (run_opt.retry_failed && !run_opt.resume) throw flowlab::Error("--retry-failed needs --resume");
      run_opt.self = self_path(argv[0]);
      run_opt.plugin_paths = plugin_path;
      // A shard: --shard I/N, else the Slurm array task's (SLURM_ARRAY_TASK_ID, ...), else the whole sweep.
      const auto sh = !shard.empty()
                          ? flowlab::parse_shard(shard)
                          : flowlab::shard_from_env([](const char* n) -> const char* { return std::getenv(n); });
      run_opt.shard_index = sh.index, run_opt.shard_count = sh.count;
      const auto ex = flowlab::load_experiment(exp_file, registry);
      return flowlab::run_experiment(ex, run_opt, std::cout);
    }
  } catch (const std::exception& e) {
    std::cerr << "flowlab: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
