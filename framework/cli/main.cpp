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

  const auto run_cmd = flowlab::cli::add_run_command(
      app, [&] { return self_path(argv[0]); }, plugin_path);

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

  const auto trial_cmd = flowlab::cli::add_trial_command(app);  // internal: one trial in a worker process
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
    if (!*trial_cmd.app) print_problems(registry);
    if (*plugins) return cmd_plugins(registry, kind);
    if (*describe) return cmd_describe(registry, what);
    if (*validate) return cmd_validate(registry, exp_file);
    if (*trial_cmd.app) return trial_cmd.run(registry);
    if (*run_cmd.app) return run_cmd.run(registry);
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
  } catch (const std::exception& e) {
    std::cerr << "flowlab: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
