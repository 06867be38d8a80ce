// The `flowlab` command line: plugins, describe (and, as later issues land, validate/run/report).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include "flowlab/registry.hpp"
#include "flowlab/version.hpp"

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
}

int cmd_plugins(const flowlab::Registry& registry, const std::string& kind) {
  if (!kind.empty()) {
    const auto& kinds = flowlab::plugin_kinds();
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      throw flowlab::PluginNotFoundError(
          fmt::format("unknown plugin kind '{}' (valid: {})", kind, fmt::join(kinds, ", ")));
  }
  std::vector<std::vector<std::string>> rows = {{"KIND", "NAME", "VERSION", "DESCRIPTION", "FILE"}};
  for (const auto& p : registry.list(kind)) rows.push_back({p.kind, p.name, p.version, p.description, p.file});
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flowlab: flow-matching experiments with plugin paths, solvers and models"};
  app.set_version_flag("--version", std::string("flowlab ") + FLOWLAB_VERSION);
  app.require_subcommand(1);
  std::vector<std::string> plugin_path;
  app.add_option("--plugin-path", plugin_path, "extra plugin directory (repeatable); also $FLOWLAB_PLUGIN_PATH")
      ->type_name("DIR");

  std::string kind;
  auto* plugins = app.add_subcommand("plugins", "list the plugins found, optionally of one KIND");
  plugins->add_option("kind", kind, "path, weighting, time_sampler, noise, architecture, solver, dataset, metric, coupling");

  std::string what;
  auto* describe = app.add_subcommand("describe", "show a plugin's parameters with types, defaults and docs");
  describe->add_option("plugin", what, "KIND/NAME, e.g. solver/rk4")->required();

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
    flowlab::Registry registry(plugin_path);
    print_problems(registry);
    if (*plugins) return cmd_plugins(registry, kind);
    if (*describe) return cmd_describe(registry, what);
  } catch (const std::exception& e) {
    std::cerr << "flowlab: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
